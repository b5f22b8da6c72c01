"""The batch ledger: an SQLite database (WAL mode) beside the outputs that records each job's state —
running, done or failed (with its one-line error) — keyed by the job's content key. It survives a killed
run: what was running is run again, what is done is skipped. One batch at a time may use a folder: the
ledger file is locked while a run holds it."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

from ..errors import DiffdiffError

LEDGER_NAME = "diffdiff-batch.sqlite"
STATES = ("running", "done", "failed")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    output TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN {STATES}),
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    updated REAL NOT NULL
)
"""


class Ledger:
    """Job states of the batch writing to `folder`; use as a context manager (the lock is held inside)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LEDGER_NAME
        self._lock = None
        self._db = None

    def __enter__(self) -> Ledger:
        self._lock = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise DiffdiffError(f"another batch is writing to {self.path.parent}; wait for it to end") \
                from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # each commit survives a killed process
            self._db.execute(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.__exit__(None, None, None)
            raise DiffdiffError(f"the ledger {self.path} is unreadable ({exc}); move it away to start over") \
                from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._db is not None:
            self._db.close()  # the last connection: SQLite folds the WAL back in and removes it
            self._db = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def states(self) -> dict[str, tuple[str, str | None]]:
        """key → (state, error) of every job the ledger knows."""
        rows = self._db.execute("SELECT key, state, error FROM jobs")
        return {key: (state, error) for key, state, error in rows}

    def start(self, jobs) -> None:
        """Mark `jobs` running (one more attempt each), in one transaction."""
        now = time.time()
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO jobs (key, source, output, state, attempts, updated)"
                " VALUES (?, ?, ?, 'running', 1, ?)"
                " ON CONFLICT(key) DO UPDATE SET state='running', error=NULL, attempts=attempts+1,"
                " source=excluded.source, output=excluded.output, updated=excluded.updated",
                [(job.key, job.where, job.output, now) for job in jobs])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def finish(self, key: str, error: str | None = None, seconds: float | None = None) -> None:
        """Record a job done (no `error`) or failed with its one-line `error`."""
        state = "failed" if error else "done"
        self._db.execute("UPDATE jobs SET state=?, error=?, seconds=?, updated=? WHERE key=?",
                         (state, error, seconds, time.time(), key))

    def mark_done(self, job) -> None:
        """A job found written (its output is in the folder) though the ledger did not say so yet."""
        self.start([job])
        self.finish(job.key)
