"""The reseller's invoices from an upstream whose provider has them (``Capability.INVOICES``):
plain functions the admin API and the operator console share.

Invoices cover every billing source's customers, so only a key over every source may
read them (``source`` is the caller's key's source). Errors are ``ApiError``s with
the answers' statuses: 403, 404 (no such upstream or invoice), 409 (a provider
without invoices), 502 (the upstream failed; its safe message only).
"""
from __future__ import annotations

import csv
import io
import logging
import re
from typing import Any, Callable

from .providers.base import Capability, Invoice
from .providers.errors import NotFound, ProviderError
from .runtime import Runtime
from .web.errors import ApiError

log = logging.getLogger("provisioner.invoices")

def has_invoices(runtime: Runtime, name: str) -> bool:
    try:
        return runtime.provider(name).supports(Capability.INVOICES)
    except ProviderError:
        return False


def _call(runtime: Runtime, name: str, source: str | None, prefix: str, call: Callable[[Any], Any]):
    if source is not None:
        raise ApiError(403, "forbidden", f"API key {prefix}… is limited to billing source {source!r}; "
                                         "upstream invoices cover every source.")
    if name not in runtime.catalog.upstreams:
        raise ApiError(404, "upstream_not_found", f"No upstream named {name!r} is configured.")
    try:
        provider = runtime.provider(name)
        if not provider.supports(Capability.INVOICES):
            raise ApiError(409, "not_supported", f"Upstream {name!r} ({provider.kind}) has no invoices.")
        return call(provider)
    except NotFound:
        raise ApiError(404, "invoice_not_found", f"Upstream {name!r} has no such invoice.") from None
    except ProviderError as exc:
        log.warning("upstream %s: invoices failed: %s (%s)", name, exc.code, exc.message)
        raise ApiError(502, exc.code, exc.safe_message) from None


def list_invoices(runtime: Runtime, name: str, *, source: str | None, prefix: str) -> list[Invoice]:
    return _call(runtime, name, source, prefix, lambda provider: provider.list_invoices())


def invoice_pdf(runtime: Runtime, name: str, invoice_id: str, *, source: str | None, prefix: str) -> bytes:
    return _call(runtime, name, source, prefix, lambda provider: provider.invoice_pdf(invoice_id))


def download_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "invoice"


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    # A spreadsheet would run a cell starting with these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """``rows`` (invoices as the API dumps them) as CSV with ``columns``, formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row[column]) for column in columns])
    return out.getvalue()
