"""CPU seconds used by processes, read from /proc, to split a benchmark's cost.

A benchmark on a 2-core machine is CPU-bound: requests per second alone do not
say whether the server, the database or the client spent the time. Snapshots
before and after a phase give each one's CPU per request.
"""
from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, parent pid, user+system CPU seconds) of one process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _all() -> dict[int, tuple[str, int, float]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                found[int(entry)] = stat
    return found


def snapshot(root_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of each root's process tree, of PostgreSQL's processes and of this process."""
    processes = _all()
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)

    def tree(pid: int) -> float:
        total, stack = 0.0, [pid]
        while stack:
            current = stack.pop()
            if current in processes:
                total += processes[current][2]
            stack.extend(children.get(current, ()))
        return total

    result = {f"tree_{pid}": tree(pid) for pid in root_pids}
    result["postgres"] = sum(cpu for comm, _, cpu in processes.values() if comm.startswith("postgres"))
    times = os.times()
    result["client"] = times.user + times.system
    return result
