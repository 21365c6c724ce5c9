"""The forest plot: FP8 - BF16 avg@k per benchmark and comparison, with the parity margin."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from harness.report.data import ReportData
from harness.report.figures.style import BAR_GREEN, PALETTE, STYLE, legend_right


def eval_figure(data: ReportData) -> Figure | None:
    """Forest plot: FP8 - BF16 avg@k per benchmark and comparison, 95% CI, margin band."""
    items = [(f"{r.id}{' (EMULATED)' if r.emulated else ''} {b}", e) for r in data.parity.comparisons
             if r.status == "ok" for b, e in sorted(r.eval.items())]  # fmt: skip
    if not items:
        return None
    margin = data.parity.margin_points or 0
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(7.2, 1.4 + 0.4 * len(items)), layout="constrained")
        ax = fig.subplots()
        ax.axvspan(-margin, margin, color=BAR_GREEN, alpha=0.15, lw=0, label=f"parity margin +/-{margin:g} points")
        ax.axvline(0, color="#444444", lw=0.8)
        for i, (_, e) in enumerate(items):
            d = e.delta
            ax.errorbar(d.value, i, xerr=[[d.value - d.ci_low], [d.ci_high - d.value]], fmt="o", color=PALETTE[0],
                        capsize=3, label="FP8 - BF16, 95% paired bootstrap CI" if i == 0 else None)  # fmt: skip
        ax.set_yticks(range(len(items)), [name for name, _ in items])
        ax.set_ylim(len(items) - 0.5, -0.5)
        ax.margins(x=0.1)
        ax.set_xlabel("FP8 - BF16 avg@k (points)")
        ax.set_title("Evaluation deltas", loc="left")
        legend_right(ax)
    return fig
