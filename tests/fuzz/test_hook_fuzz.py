"""A signed-hook fuzzer: Hypothesis builds events after the hook body schema, then mutates
them — types, nesting depth, encodings (invalid UTF-8, a BOM, UTF-16), control characters,
NUL bytes, lone surrogates, huge and non-finite numbers, long strings, dates at the edges
— and signs every body validly (over its exact bytes), for ``POST /hooks/v1/events`` and
``POST /hooks/v1/events/validate``; now and then a header is mangled as well (a webhook-id,
timestamp or signature that is long, not ASCII, not a number, or missing).

Whatever the body: never a 5xx; every refusal is a JSON error with a code and a message;
a refused event stores nothing (no events, jobs or services rows added, no service
changed), and validation stores nothing ever.

The CI variant runs by default with a fixed seed (on SQLite, or PostgreSQL with
PROVISIONER_TEST_DATABASE_URL); the long one is marked ``fuzz`` (``PROVISIONER_FUZZ=1``).
"""
from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import time

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import select

from provisioner import events as ev
from provisioner.intake import sign
from provisioner.models import Service
from tests.fuzz.conftest import LONG_RUNS, long_run, row_counts

CI_EXAMPLES, LONG_EXAMPLES = 250, 3000

#: a few of the seeded services, one that does not exist, one of another shape
SERVICE_IDS = ["1042", "1043", "1044", "5001", "default:1042", 1042, "0"]
PRODUCT_IDS = ["12", "1", "20", "30", "999", 12]
#: webhook-ids drawn again and again (redeliveries and reused ids are judged too), or new
WEBHOOK_IDS = [f"msg_fuzz_{n}" for n in range(6)]

EDGE_INSTANTS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00Z",
                 "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2199-12-31T23:59:59Z",
                 "2199-12-31T23:59:59-14:00", "1970-01-01T00:00:00+14:00", "2200-01-01T00:00:00Z",
                 "2026-02-29T10:00:00Z", "2026-12-31T23:59:60Z", "2026-11-21T24:00:00Z",
                 "2026-11-21T10:00:00+24:00", "2026-11-21T10:00:00+99:99", "2026-11-21T10:00:00-00:00",
                 "2026-11-21T10:00:00.1234567890123Z", "2026-11-21T10:00:00", "2026-11-21", "",
                 "2026-W47-6T10:00:00Z", "+002026-11-21T10:00:00Z", "2026-11-21T10:00:00\u00a0Z"]
EDGE_DATES = ["0001-01-01", "9999-12-31", "0000-00-00", "1970-01-01", "1969-12-31", "2199-12-31",
              "2200-01-01", "2026-02-29", "2026-13-01", "2026-1-1", "20261121", "2026-11-21T00:00:00Z", ""]

#: raw JSON put in place of a value after encoding: what json.dumps cannot write
RAW_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "-0.0", "1.0",
              "5.5", "1" + "0" * 400, "1" + "0" * 5000, "123456789012345678901234567890",
              '"\\ud800"', '"\\udfff"', '"a\\ud83dx"', '"\\u0000"', '"a\\u0000b"', '"\\u001b[31m"',
              '"\\u007f"', '"\\ufeff"', '"\\ufffd"', '"\\u2028"', '"\\t\\r\\n"', '"\\\\u0000"',
              "[" * 33 + "]" * 33, "[" * 31 + "]" * 31, "[" * 3000 + "]" * 3000,
              '{"a":' * 40 + "1" + "}" * 40, '{"\\ud800": 1}', '{"a\\u0000": 1}', '{"": 1}',
              "true", "false", "null", "[]", "{}", '""', '" "',
              '"' + "x" * 300 + '"', '"' + "\u00e9" * 70000 + '"']

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=12), st.sampled_from(["", " ", "\t", "0", "-1", "true"]))
anything = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


def _often(usual, *unusual):
    """``usual`` four times out of five, else one of ``unusual``."""
    other = st.one_of(*unusual)
    return st.sampled_from((True, True, True, True, False)).flatmap(lambda u: usual if u else other)


def _text(max_size: int = 30):
    printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    return _often(st.text(printable, max_size=max_size), st.text(max_size=max_size))


recent = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31),
                      timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-11)),
                                                 dt.timezone(dt.timedelta(hours=5, minutes=30))]))
instants = _often(recent.map(lambda d: d.isoformat().replace("+00:00", "Z")), st.sampled_from(EDGE_INSTANTS),
                  st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()))
dates = _often(st.dates(dt.date(2026, 1, 1), dt.date(2028, 1, 1)).map(dt.date.isoformat),
               st.sampled_from(EDGE_DATES), st.dates().map(dt.date.isoformat))
domains = _often(st.one_of(st.sampled_from(["fuzz0.example.com", "fuzz1.example.com", "fuzz2.example.com",
                                            "new.example.org", "EXAMPLE.COM ", "xn--bcher-kva.example"]),
                           st.from_regex(r"[a-z0-9]{1,12}\.[a-z]{2,6}", fullmatch=True)),
                 st.sampled_from(["-bad-.com", "a" * 64 + ".com", "localhost", "", "ex ample.com"]))
options = st.dictionaries(
    st.sampled_from(["Total Mailboxes", "Mailbox Quota (GB)", " total mailboxes | Mailboxes", "Plan",
                     "Total Aliases", "Total Distribution Lists", "Total Enhanced Mailboxes"]),
    _often(st.integers(0, 12), st.sampled_from(["5", " 5 ", "5.0", "five", "", "1e3", "0x10", 5.0, 5.5, -1,
                                                   10 ** 30, True])),
    max_size=4)
client_details = st.fixed_dictionaries(
    {"id": st.sampled_from(["77", "78", 77])},
    optional={"email": st.sampled_from(["a@example.com", "", "not-an-address"]),
              "first_name": _text(), "last_name": _text(), "company": st.one_of(st.none(), _text()),
              "country": st.sampled_from(["DE", "US", "", "D"]), "address": _text(), "city": _text(),
              "state": _text(), "postcode": st.sampled_from(["10117", ""]),
              "phone": st.sampled_from(["+49.3012345678", ""]), "language": st.sampled_from(["de", "en", ""])})
service = st.fixed_dictionaries(
    {"id": st.sampled_from(SERVICE_IDS), "product_id": st.sampled_from(PRODUCT_IDS)},
    optional={"domain": domains, "username": st.one_of(st.none(), _text()),
              "password": _often(st.just("Initial-Pw-2026"), st.none(), st.just(""), _text()),
              "config_options": options,
              "custom_fields": st.dictionaries(_text(8), _often(_text(), scalars), max_size=3),
              "billing_cycle": st.one_of(st.none(), st.sampled_from(["monthly", "annually", "semi-annually"])),
              "next_due_date": st.one_of(st.none(), dates),
              "suspend_reason": st.one_of(st.none(), st.sampled_from(["Overdue on Payment", ""]), _text()),
              "auto_suspend": st.one_of(st.none(), st.fixed_dictionaries(
                  {"enabled": st.booleans()}, optional={"until": st.one_of(st.none(), dates)}))})
#: events much as a billing system sends them (most pass the schema)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(ev.TYPES), "occurred_at": instants, "service": service},
    optional={"client": st.one_of(st.none(), client_details)})

#: what a mutation does somewhere in a document: another value (of any type, or a long
#: string), raw JSON text, a key deleted or added, the value nested deeper
LONG = st.integers(0, 2000).map(lambda n: "x" * n) | st.sampled_from(["é" * 300, "x" * 70000])
mutations = st.one_of(
    st.tuples(st.just("value"), anything), st.tuples(st.just("value"), LONG),
    st.tuples(st.just("raw"), st.sampled_from(RAW_VALUES)), st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("key"), st.text(max_size=10)), st.tuples(st.just("deepen"), st.integers(1, 40)))


#: header values as a careless or hostile sender writes them (the body is still signed)
header_text = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=300)
tampering = _often(st.none(), st.one_of(
    st.tuples(st.just("webhook-id"), st.one_of(header_text, st.sampled_from(["x" * 255, "x" * 256, " ", "é"]))),
    st.tuples(st.just("webhook-timestamp"), st.one_of(header_text, st.sampled_from(
        ["nan", "inf", "-inf", "1e9", "NOW.5", "+NOW", " NOW ", "NOW_0", "-1", "9" * 30, "9" * 5000,
         "\u0661\u0667", "NOW-301", "NOW+301", "0x10"]))),
    st.tuples(st.just("webhook-signature"), st.one_of(header_text, st.sampled_from(
        ["v1", "v1,", "v1,é", "v2,SIG", "SIG", "v1,SIG v1,é", "v1,é v1,SIG", "v1,SIGé", " ".join(["v1,x"] * 2000),
         "v1,SIG " * 50, "v1,=", "v1,SIG=="]))),
    st.tuples(st.just("drop"), st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]))))

#: None: a webhook-id never used before
webhook_ids = _often(st.none(), st.sampled_from(WEBHOOK_IDS))
FRESH = itertools.count(1)


@st.composite
def bodies(draw) -> bytes:
    """A hook body: an event, perhaps mutated as a document, as JSON text and as bytes."""
    document = draw(_often(events, anything))
    markers = {}
    for kind, value in draw(_often(st.just([]), st.lists(mutations, min_size=1, max_size=3))):
        paths = list(_leaves(document))
        path = paths[draw(st.integers(0, len(paths) - 1))]
        if kind == "value":
            document = _replace(document, path, lambda _old, value=value: value)
        elif kind == "raw":     # raw JSON json.dumps cannot write: a marker now, the text later
            marker = f"@@RAW{len(markers)}@@"
            markers[marker] = value
            document = _replace(document, path, lambda _old, marker=marker: marker)
        elif kind == "delete" and path:
            document = _replace(document, path[:-1], lambda parent, key=path[-1]: (
                {k: v for k, v in parent.items() if k != key} if isinstance(parent, dict)
                else [v for i, v in enumerate(parent) if i != key]))
        elif kind == "key":
            document = _replace(document, path,
                                lambda old, key=value: {**old, key: 1} if isinstance(old, dict) else old)
        elif kind == "deepen":
            document = _replace(document, path, lambda old, depth=value: _deepen(old, depth))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    for marker, raw in markers.items():
        text = text.replace(json.dumps(marker), raw)
    body = text.encode("utf-8")
    encoding = draw(_often(st.just("utf-8"), st.sampled_from(["bom", "utf-16", "latin-1", "invalid", "nul", "cut"])))
    if encoding == "bom":
        body = b"\xef\xbb\xbf" + body
    elif encoding == "utf-16":
        body = text.encode("utf-16")
    elif encoding == "latin-1":
        body = text.encode("latin-1", "replace") + "é".encode("latin-1")
    elif encoding == "invalid":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                                 b"\xc0\xaf", b"\x80"])) + body[at:]
    elif encoding == "nul":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + b"\x00" + body[at:]
    elif encoding == "cut":
        body = body[:draw(st.integers(0, len(body)))]
    return body


def _deepen(value, depth: int):
    for _ in range(depth):
        value = [value] if depth % 2 else {"deep": value}
    return value


def _leaves(document, path=()):
    """Paths to every value of a document (the document itself included)."""
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _leaves(value, path + (index,))


def _replace(document, path, make):
    if not path:
        return make(document)
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {**document, head: _replace(document[head], rest, make)}
    copy = list(document)
    copy[head] = _replace(copy[head], rest, make)
    return copy


def _services(runtime) -> list[tuple]:
    with runtime.db.read() as session:
        rows = session.execute(select(Service).order_by(Service.id)).scalars().all()
        return [tuple(getattr(row, column.key) for column in Service.__table__.columns) for row in rows]


class Hooks:
    """Sends signed bodies and checks what each answer left behind."""

    def __init__(self, client, runtime, secret: str):
        self.client, self.runtime, self.secret = client, runtime, secret
        self.by_status: collections.Counter[tuple[str, int]] = collections.Counter()
        self.by_error: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.started = time.monotonic()

    def send(self, path: str, body: bytes, webhook_id: str, tamper: tuple[str, str] | None = None):
        timestamp = int(time.time())
        name, value = tamper or (None, None)
        if name == "webhook-id":
            webhook_id = value
        signature = sign(self.secret, webhook_id, timestamp, body)
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": "v1," + signature, "content-type": "application/json"}
        if name == "drop":
            del headers[value]
        elif name in ("webhook-timestamp", "webhook-signature"):
            now = str(timestamp)
            headers[name] = (value.replace("NOW-301", str(timestamp - 301)).replace("NOW+301", str(timestamp + 301))
                             .replace("NOW", now).replace("SIG", signature))
        before = row_counts(self.runtime), _services(self.runtime)
        r = self.client.post(path, data=body, headers=headers)
        after = row_counts(self.runtime), _services(self.runtime)
        self.by_status[(path, r.status_code)] += 1
        if r.status_code >= 400 and r.is_json:
            error = r.get_json()["error"]
            self.by_error[(error["code"], *sorted(error.get("fields") or {})[:1])] += 1
        shown = body[:300]
        assert r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:500], shown)
        assert r.mimetype == "application/json", (r.status_code, r.mimetype, shown)
        answer = r.get_json()
        if r.status_code >= 400:
            assert answer["error"]["code"] and answer["error"]["message"], (answer, shown)
            assert after == before, (f"a refused hook ({r.status_code} {answer['error']['code']}) changed "
                                     f"what is stored", shown)
        else:
            assert r.status_code in (200, 202), (r.status_code, answer, shown)
            if path.endswith("/validate"):
                assert answer["valid"] is True, answer
                assert after == before, ("validation stored something", shown)
        return r

    def report(self) -> str:
        return (f"{sum(self.by_status.values())} signed hooks in {time.monotonic() - self.started:.1f} s: "
                + ", ".join(f"{path.rsplit('/', 1)[-1]} {status}: {n}"
                            for (path, status), n in sorted(self.by_status.items())))


@pytest.fixture
def hooks(client, runtime, signer, seeded):
    sender = Hooks(client, runtime, signer.secret)
    yield sender
    print("\n" + sender.report() + "\nmost frequent refusals: "
          + ", ".join(f"{' '.join(key)}: {n}" for key, n in sender.by_error.most_common(8)))


FUZZ_SETTINGS = dict(
    deadline=None, database=None, derandomize=not LONG_RUNS, print_blob=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example])


def _fuzz(hooks, body: bytes, webhook_id: str | None, validate_first: bool, tamper) -> None:
    webhook_id = webhook_id or f"msg_new_{next(FRESH)}"
    if validate_first:
        check = hooks.send("/hooks/v1/events/validate", body, webhook_id, tamper)
        r = hooks.send("/hooks/v1/events", body, webhook_id, tamper)
        # /validate answers what /events would: the same status (a 2xx for a 2xx), the same error.
        if check.status_code >= 400 or r.status_code >= 400:
            assert (check.status_code, check.get_json().get("error", {}).get("code")) == \
                (r.status_code, r.get_json().get("error", {}).get("code")), (check.get_json(), r.get_json())
    else:
        hooks.send("/hooks/v1/events", body, webhook_id, tamper)


def _fuzz_run(hooks, examples: int) -> None:
    @settings(max_examples=examples, **FUZZ_SETTINGS)
    @given(body=bodies(), webhook_id=webhook_ids, validate_first=st.booleans(), tamper=tampering)
    def run(body, webhook_id, validate_first, tamper):
        _fuzz(hooks, body, webhook_id, validate_first, tamper)

    run()


def test_signed_hooks_never_answer_5xx_nor_store_what_they_refuse(hooks):
    _fuzz_run(hooks, CI_EXAMPLES)
    assert sum(hooks.by_status.values()) >= CI_EXAMPLES


@pytest.mark.fuzz
@long_run
def test_signed_hooks_never_answer_5xx_nor_store_what_they_refuse_long(hooks):
    _fuzz_run(hooks, LONG_EXAMPLES)
