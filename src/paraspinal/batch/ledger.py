"""The run ledger: one SQLite row per case with its status, error and timings.

The ledger is written only by the driver process (never by workers), one short transaction per
event, so a run killed at any moment (even ``kill -9``) leaves a consistent file. The source of
truth for "finished" is the case's output folder, which appears atomically (staged, then renamed);
:meth:`Ledger.reconcile` brings the ledger in line with the folders found on disk.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id   TEXT PRIMARY KEY,
    status    TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error     TEXT,
    worker    TEXT,
    attempts  INTEGER NOT NULL DEFAULT 0,
    started   REAL,
    finished  REAL,
    seconds   REAL
);
"""


@dataclass(frozen=True)
class LedgerCounts:
    """How many cases are in each status."""

    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running + self.done + self.failed


@dataclass(frozen=True)
class LedgerRecord:
    """One case's row: status, one-line error, and when it finished (epoch seconds; None while not)."""

    case_id: str
    status: str
    error: str | None
    finished: float | None


class Ledger:
    """SQLite ledger of case status for one output folder (``<out>/ledger.sqlite``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, case_ids: Iterable[str]) -> None:
        """Add cases as pending; cases already known keep their status."""
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO cases (case_id, status) VALUES (?, 'pending')", [(c,) for c in case_ids]
            )

    def mark_running(self, case_id: str, *, worker: str = "") -> None:
        with self._db:
            self._db.execute(
                "UPDATE cases SET status='running', worker=?, started=?, attempts=attempts+1, error=NULL "
                "WHERE case_id=?",
                (worker, time.time(), case_id),
            )

    def mark_done(self, case_id: str, *, seconds: float) -> None:
        with self._db:
            self._db.execute(
                "UPDATE cases SET status='done', finished=?, seconds=?, error=NULL WHERE case_id=?",
                (time.time(), seconds, case_id),
            )

    def mark_failed(self, case_id: str, *, error: str, seconds: float) -> None:
        with self._db:
            self._db.execute(
                "UPDATE cases SET status='failed', finished=?, seconds=?, error=? WHERE case_id=?",
                (time.time(), seconds, " ".join(error.split()), case_id),
            )

    def reconcile(self, *, finished: set[str]) -> None:
        """Make the ledger agree with disk: cases whose outputs exist are done; others that
        claim to be done or running (interrupted) go back to pending."""
        with self._db:
            rows = self._db.execute("SELECT case_id, status FROM cases").fetchall()
            for case_id, status in rows:
                if case_id in finished and status != "done":
                    self._db.execute("UPDATE cases SET status='done', error=NULL WHERE case_id=?", (case_id,))
                elif case_id not in finished and status in ("done", "running"):
                    self._db.execute("UPDATE cases SET status='pending' WHERE case_id=?", (case_id,))

    def forget_all_but(self, case_ids: Iterable[str]) -> None:
        """Drop the rows of cases this run does not hold (a fixed cases CSV row, a renamed file)."""
        keep = list(dict.fromkeys(case_ids))
        with self._db:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (case_id TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM keep")
            self._db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", [(c,) for c in keep])
            self._db.execute("DELETE FROM cases WHERE case_id NOT IN (SELECT case_id FROM keep)")

    def records(self) -> list[LedgerRecord]:
        """Every case's row, sorted by case id."""
        rows = self._db.execute("SELECT case_id, status, error, finished FROM cases ORDER BY case_id")
        return [LedgerRecord(str(c), str(s), None if e is None else str(e), f) for c, s, e, f in rows]

    def status(self, case_id: str) -> str | None:
        row = self._db.execute("SELECT status FROM cases WHERE case_id=?", (case_id,)).fetchone()
        return None if row is None else str(row[0])

    def cases_with(self, status: str) -> list[str]:
        """Case ids in ``status``, sorted."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        rows = self._db.execute("SELECT case_id FROM cases WHERE status=? ORDER BY case_id", (status,))
        return [str(r[0]) for r in rows]

    def failures(self) -> dict[str, str]:
        """Failed case ids and their one-line errors."""
        rows = self._db.execute("SELECT case_id, error FROM cases WHERE status='failed' ORDER BY case_id")
        return {str(c): str(e or "") for c, e in rows}

    def counts(self) -> LedgerCounts:
        rows = dict(self._db.execute("SELECT status, COUNT(*) FROM cases GROUP BY status").fetchall())
        return LedgerCounts(**{s: int(rows.get(s, 0)) for s in STATUSES})
