"""The browser tests' fixtures, defined once for every module (see ``browsing``)."""
from tests.browser.browsing import browser, live_url, page  # noqa: F401
