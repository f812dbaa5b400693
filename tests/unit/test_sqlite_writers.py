"""SQLite writers take turns: threads on the process's lock, processes on a file lock."""
from __future__ import annotations

import subprocess
import sys
import threading

from provisioner.db import Database
from provisioner.sqlite_writers import WriterTurns

TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("held")
else:
    print("free")
"""


def other_process_sees(lock_path: str) -> str:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, lock_path], capture_output=True,
                          text=True, timeout=30, check=True).stdout.strip()


def test_a_turn_holds_the_file_lock_against_other_processes(tmp_path):
    turns = WriterTurns(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert turns.lock_path == f"{tmp_path / 'db.sqlite3'}-writers.lock"
    with turns.turn():
        assert other_process_sees(turns.lock_path) == "held"
        with turns.turn():                       # re-entrant: a transaction inside another
            assert other_process_sees(turns.lock_path) == "held"
        assert other_process_sees(turns.lock_path) == "held"   # still the outer one's
    assert other_process_sees(turns.lock_path) == "free"
    turns.close()


def test_threads_wait_for_each_others_turn(tmp_path):
    turns = WriterTurns(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    inside, release, second_entered = threading.Event(), threading.Event(), threading.Event()

    def first():
        with turns.turn():
            inside.set()
            release.wait(10)

    def second():
        with turns.turn():
            second_entered.set()

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=second)
    b.start()
    assert not second_entered.wait(0.2)          # the first still has the turn
    release.set()
    assert second_entered.wait(10)
    a.join(10)
    b.join(10)
    turns.close()


def test_in_memory_databases_need_no_file(tmp_path):
    turns = WriterTurns("sqlite://")
    assert turns.lock_path is None
    with turns.turn():
        pass


def test_database_transactions_take_the_turn(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with db.transaction():
            assert other_process_sees(db._writers.lock_path) == "held"
        assert other_process_sees(db._writers.lock_path) == "free"
    finally:
        db.dispose()
