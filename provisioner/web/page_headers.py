"""The headers of pages a signed-in person sees (client area, operator console): never
cached, never framed, no type sniffing, the referrer kept on this site, and a content
security policy on HTML."""
from __future__ import annotations

from flask import Response


def private_page_headers(response: Response, csp: str) -> Response:
    headers = response.headers
    headers.setdefault("Cache-Control", "private, no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", csp)
    return response
