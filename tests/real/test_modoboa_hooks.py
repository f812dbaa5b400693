"""The provisioner against the real Modoboa: signed hooks in, IMAP logins out.

The place for issue 17's hook-driven journeys, to be written once the ``modoboa`` provider
adapter lands: a service on a product with ``provider: modoboa`` whose ``base_url`` is
``modoboa_real.url`` and whose token is ``modoboa_real.token`` (through an ``${ENV}``
variable), then, through signed hooks only: create → IMAP LOGIN with the billing password
succeeds and a wrong one fails; a mailbox added in the client area logs in with its own
password; change password → only the new one works; suspend → login fails; unsuspend →
works; change package → the domain quota changes in Modoboa; terminate → the domain is
gone. The contract suite (tests/contract) pointed at the same instance belongs here too.

The ``modoboa_real`` fixture (tests/real/conftest.py) and the helpers in
tests/real/modoboa_api.py (``Api``, ``imap_login``) are what these tests use. Until the
adapter exists this module holds no tests (it never reports a stub as passing).
"""
