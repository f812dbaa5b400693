"""A lean HTTP/1.1 load generator for the benchmarks.

The benchmark client shares the machine's two cores with the server it
measures, so every microsecond it spends is taken from the server. A
``requests`` session costs about 0.3–0.5 ms of CPU a request and contends for
the GIL across threads; this client sends requests that are already bytes
over ``concurrency`` keep-alive connections from one asyncio loop and reads
only the status line, the headers and ``Content-Length`` bytes of body (about
0.15 ms of CPU a request, measured by bench/hook_intake.py), so the server, not the
client, sets the pace.

It speaks only what our server answers: HTTP/1.1 with ``Content-Length``
(gunicorn's answers to these requests are never chunked).
"""
from __future__ import annotations

import asyncio
import time


def build_request(method: str, path: str, host: str, headers: dict | None = None,
                  body: bytes = b"") -> bytes:
    """One request as bytes, ready to write on a keep-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def _run(host: str, port: int, payloads: list[bytes], concurrency: int, timeout: float):
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    queue = iter(payloads)

    async def connection() -> None:
        reader = writer = None
        try:
            for payload in queue:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                started = time.perf_counter()
                try:
                    writer.write(payload)
                    status = str(await asyncio.wait_for(_read_answer(reader), timeout))
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                        asyncio.LimitOverrunError, ValueError) as exc:
                    status = type(exc).__name__
                    writer.close()
                    reader = writer = None
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            if writer is not None:
                writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def run_load(host: str, port: int, payloads: list[bytes], concurrency: int,
             timeout: float = 30.0) -> tuple[float, list[float], dict[str, int]]:
    """Send every payload, ``concurrency`` at a time; (wall seconds, latencies, status counts)."""
    return asyncio.run(_run(host, port, payloads, concurrency, timeout))
