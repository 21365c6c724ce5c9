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
    """One row per comparison: speed-up (95% CI), memory, loss error, score deltas, verdict.

    Differences are FP8 - BF16 (a step time 10% longer in FP8 is +10.0%); an emulated arm's speed
    and memory are not shown, they say nothing about FP8 hardware.
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"FP8 vs {parity.baseline_arm} - suite {parity.suite}")
    for name in ("comparison", "speed-up BF16/FP8 [95% CI]", "step time FP8 vs BF16", "memory FP8 vs BF16",
                 "max loss err", "loss (FP8-BF16)/BF16", "score FP8-BF16 (pts) [95% CI]", "verdict"):  # fmt: skip
        table.add_column(name)
    for row in parity.comparisons:
        label = row.id + (" EMULATED" if row.emulated else "")
        if row.status != "ok":
            table.add_row(label, "-", "-", "-", "-", "-", "-", f"FAILED: {row.reason}")
            continue
        speed, memory, loss = row.speed, row.memory, row.loss
        scores = "; ".join(f"{b} {_ci(e.delta, '+.1f')}" for b, e in sorted(row.eval.items())) or "-"
        err, signed = loss.max_rel_error, loss.mean_signed_rel_error
        if row.cost_not_measured:
            cost = ["not measured (emulated)", "-", "-"]
        else:
            time_change = -speed.time_reduction_pct if speed.time_reduction_pct is not None else None
            mem = memory.memory_reduction_pct
            cost = [_ci(speed.speedup), _pct(time_change), _pct(-mem if mem is not None else None)]
        verdict = row.verdict + (" (speed, memory void: FP8 loss diverged)" if row.cost_diverged else "")
        table.add_row(label, *cost, "-" if err is None else f"{err:.3%}", "-" if signed is None else f"{signed:+.3%}",
                      scores, verdict)  # fmt: skip
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue().rstrip()
