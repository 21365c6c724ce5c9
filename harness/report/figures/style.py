"""One style for every report figure: fonts, sizes, colours, legends outside the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from harness.recipes import BASELINE  # noqa: E402
from harness.report.data import ReportData  # noqa: E402

# One font and one size for all text (titles one step larger); legends never on the data.
STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "harness",  # deterministic ids, so reports diff cleanly
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
}
PALETTE = ("#3b5b92", "#e07b39", "#3a9d5d", "#b23a48", "#7a5195", "#8c8c8c")
# Baseline solid and drawn first, other arms dashed or dotted on top: equal curves stay visible.
LINESTYLES = ("-", "--", ":", "-.")
CONTROL_GREY = "#8c8c8c"
BAR_GREEN = "#3a9d5d"


def _arms(data: ReportData) -> list[str]:
    """Baseline first, then the FP8 arms, BF16 control arms last: the same order in every figure."""
    base = data.parity.baseline_arm
    recipes = {s.run.spec.arm: s.run.spec.recipe for s in data.runs.values()}
    return sorted(recipes, key=lambda a: (a != base, recipes[a] == BASELINE, a))


def colors(data: ReportData) -> dict[str, str]:
    """Baseline blue, FP8 arms orange, green, ..., controls grey; stable across figures."""
    out, i = {}, 0
    for arm in _arms(data):
        control = arm != data.parity.baseline_arm and any(
            s.run.spec.arm == arm and s.run.spec.recipe == BASELINE for s in data.runs.values()
        )
        out[arm] = CONTROL_GREY if control else PALETTE[i % len(PALETTE)]
        i += 0 if control else 1
    return out


def linestyles(data: ReportData) -> dict[str, str]:
    return {arm: LINESTYLES[i % len(LINESTYLES)] for i, arm in enumerate(_arms(data))}


def legend_right(ax, **kwargs):
    """A legend beside the axes, outside the plotted data (constrained layout makes room for it)."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)
