"""A terminal table of a parity.json (what `harness compare` prints)."""

from __future__ import annotations

import io

from harness.analysis.results import Parity


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _ci(est, fmt: str = ".3f") -> str:
    if est is None:
        return "-"
    return f"{format(est.value, fmt)} [{format(est.ci_low, fmt)}, {format(est.ci_high, fmt)}]"


def parity_table(parity: Parity, width: int = 160) -> str:
    """One row per comparison: speed-up (95% CI), memory, loss error, score deltas, verdict."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"FP8 vs {parity.baseline_arm} - suite {parity.suite}")
    for name in ("comparison", "speed-up [95% CI]", "time", "memory", "max loss err", "loss FP8-BF16",
                 "score delta (pts) [95% CI]", "verdict"):  # fmt: skip
        table.add_column(name)
    for row in parity.comparisons:
        label = row.id + (" EMULATED" if row.emulated else "")
        if row.status != "ok":
            table.add_row(label, "-", "-", "-", "-", "-", "-", f"FAILED: {row.reason}")
            continue
        speed, memory, loss = row.speed, row.memory, row.loss
        mem = memory.memory_reduction_pct
        scores = "; ".join(f"{b} {_ci(e.delta, '+.1f')}" for b, e in sorted(row.eval.items())) or "-"
        err, signed = loss.max_rel_error, loss.mean_signed_rel_error
        time_change = -speed.time_reduction_pct if speed.time_reduction_pct is not None else None
        table.add_row(label, _ci(speed.speedup), _pct(time_change), _pct(-mem if mem is not None else None),
                      "-" if err is None else f"{err:.3%}", "-" if signed is None else f"{signed:+.3%}", scores,
                      row.verdict)  # fmt: skip
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue().rstrip()
