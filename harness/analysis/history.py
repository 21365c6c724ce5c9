"""Trend of speed-up, memory ratio and scores across commits, from the results index."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import InvalidInput
from harness.results_index import ResultsIndex, index_path


def history_rows(runs_dir: Path, suite: str | None = None) -> list[dict]:
    """Comparisons recorded in runs_dir/index.sqlite, oldest first, flattened for display."""
    path = index_path(runs_dir)
    if not path.is_file():
        raise InvalidInput(f"{path}: no results index yet; run `harness compare runs/<suite>` first")
    rows = []
    for row in ResultsIndex(path).comparisons(suite):
        rows.append({
            "when": datetime.fromtimestamp(row["recorded_at"] or 0, UTC).strftime("%Y-%m-%d %H:%M"),
            "git_sha": (row.get("git_sha") or "")[:10] or None,
            "suite": row["suite"], "stage": row["stage"], "arm": row["arm"], "seed": row["seed"],
            "speedup": row.get("speedup"), "memory_ratio": row.get("memory_ratio"),
            "loss_rel_error": row.get("loss_rel_error"),
            "score_deltas": {b: s.get("delta") for b, s in (row.get("scores") or {}).items()},
            "verdict": row["verdict"], "gate_passed": row["gate_passed"], "emulated": bool(row.get("emulated")),
        })  # fmt: skip
    return rows


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def history_table(rows: list[dict], width: int = 160) -> str:
    """The rows as a rich table rendered to plain text."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="FP8 parity history (oldest first)")
    for name in ("when (UTC)", "commit", "suite", "stage/arm/seed", "speed-up", "memory FP8/BF16", "max loss err",
                 "score FP8 - BF16 (pts)", "verdict", "gate"):  # fmt: skip
        table.add_column(name)
    for r in rows:
        deltas = ", ".join(f"{b} {_num(d, '+.1f')}" for b, d in sorted(r["score_deltas"].items())) or "-"
        gate = {None: "-", 1: "pass", 0: "fail"}.get(r["gate_passed"], "?")
        name = f"{r['stage']}/{r['arm']}/s{r['seed']}" + (" EMULATED" if r["emulated"] else "")
        # An emulated arm's speed and memory are not FP8's: never shown as numbers (older rows may hold some).
        speed = "not measured" if r["emulated"] else _num(r["speedup"], ".3f") + ("x" if r["speedup"] else "")
        memory = (
            "not measured" if r["emulated"] else _num(r["memory_ratio"], ".3f") + ("x" if r["memory_ratio"] else "")
        )
        table.add_row(r["when"], r["git_sha"] or "-", r["suite"], name, speed, memory,
                      _num(r["loss_rel_error"], ".2%"), deltas, r["verdict"] or "-", gate)  # fmt: skip
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue().rstrip()
