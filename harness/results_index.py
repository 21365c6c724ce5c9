"""The SQLite results index, runs/index.sqlite: one row per run and per comparison, for `harness history`
and the regression gates; every write is one transaction, and a damaged or busy file is one message."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InvalidInput
from harness.store import finite_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    suite TEXT NOT NULL, run_id TEXT NOT NULL, stage TEXT, arm TEXT, recipe TEXT, seed INTEGER,
    fingerprint TEXT, status TEXT, git_sha TEXT, recorded_at REAL, summary_json TEXT,
    PRIMARY KEY (suite, run_id, recorded_at)
);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    suite TEXT NOT NULL, stage TEXT, seed INTEGER, arm TEXT, baseline TEXT,
    git_sha TEXT, recorded_at REAL, scores_json TEXT, verdict TEXT, gate_passed INTEGER, emulated INTEGER
);
-- plus one REAL column per gate metric (speedup, memory_ratio, ...), added by record_comparison
"""


_COLUMN = re.compile(r"[a-z][a-z0-9_]*")


class ResultsIndex:
    """SQLite index of runs and comparisons; every write is one transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            have = {r[1] for r in conn.execute("PRAGMA table_info(comparisons)")}
            if "emulated" not in have:  # an index from before emulated arms were marked
                conn.execute("ALTER TABLE comparisons ADD COLUMN emulated INTEGER")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=30.0)
            try:
                conn.execute("PRAGMA busy_timeout = 30000")
                with conn:  # commit on success, roll back on error
                    yield conn
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:  # not SQLite, damaged, another schema, or held too long
            raise InvalidInput(self._unusable(exc)) from None

    def _unusable(self, exc: sqlite3.DatabaseError) -> str:
        if "locked" in str(exc) or "busy" in str(exc):
            return f"{self.path}: results index busy for 30 s ({exc}); another harness process is writing it: retry"
        return (
            f"{self.path}: not a usable results index ({exc}); move it aside (mv {self.path} {self.path}.broken): "
            "the next `harness compare` starts a new one (the history it held is not carried over)"
        )

    def record_run(self, spec, status: str, git_sha: str | None, summary: dict | None) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    spec.suite,
                    spec.run_id,
                    spec.stage_name,
                    spec.arm,
                    spec.recipe,
                    spec.seed,
                    spec.fingerprint,
                    status,
                    git_sha,
                    time.time(),
                    json.dumps(finite_json(summary or {})),
                ),
            )

    def record_comparison(self, row: dict) -> None:
        """row: suite, stage, seed, arm, baseline, git_sha, recorded_at, scores (dict), verdict, gate_passed
        (None until gated), emulated, and `metrics`: column name -> value (the gates' values, harness.gate.specs).

        A metric column this index lacks yet is added, so an index written by an older harness keeps
        working and its earlier rows read NULL there.
        """
        metrics = dict(row.get("metrics") or {})
        for name in metrics:
            if not _COLUMN.fullmatch(name):
                raise ValueError(f"results index: {name!r} is not a column name")
        with self._connect() as conn:
            have = {r[1] for r in conn.execute("PRAGMA table_info(comparisons)")}
            for name in metrics:
                if name not in have:
                    conn.execute(f"ALTER TABLE comparisons ADD COLUMN {name} REAL")
            columns = ["suite", "stage", "seed", "arm", "baseline", "git_sha", "recorded_at", "scores_json",
                       "verdict", "gate_passed", "emulated", *metrics]  # fmt: skip
            emulated = row.get("emulated")
            values = [row["suite"], row.get("stage"), row.get("seed"), row.get("arm"), row.get("baseline"),
                      row.get("git_sha"), row.get("recorded_at", time.time()),
                      json.dumps(finite_json(row.get("scores", {}))), row.get("verdict"), row.get("gate_passed"),
                      None if emulated is None else int(emulated), *(finite_json(v) for v in metrics.values())]  # fmt: skip
            conn.execute(
                f"INSERT INTO comparisons ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values
            )

    def mark_gated(self, suite: str, recorded_at: float, passed: bool) -> None:
        """Set gate_passed on the comparisons one `harness compare` recorded (regression gates read it)."""
        with self._connect() as conn:
            conn.execute("UPDATE comparisons SET gate_passed = ? WHERE suite = ? AND recorded_at = ?",
                         (int(passed), suite, recorded_at))  # fmt: skip

    def comparisons(self, suite: str | None = None) -> list[dict]:
        query = "SELECT * FROM comparisons" + (" WHERE suite = ?" if suite else "") + " ORDER BY recorded_at, id"
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(query, (suite,) if suite else ()).fetchall()
        try:
            return [{**dict(r), "scores": json.loads(r["scores_json"] or "{}")} for r in rows]
        except (json.JSONDecodeError, TypeError) as exc:
            raise InvalidInput(self._unusable(sqlite3.DatabaseError(f"comparisons.scores_json: {exc}"))) from None

    def runs(self, suite: str | None = None) -> list[dict]:
        query = "SELECT * FROM runs" + (" WHERE suite = ?" if suite else "") + " ORDER BY recorded_at"
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(query, (suite,) if suite else ()).fetchall()]


def index_path(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / "index.sqlite"
