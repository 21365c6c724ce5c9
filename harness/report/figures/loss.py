"""Loss figures: each comparison's curves and windowed error, and the signed error over seeds."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import ticker
from matplotlib.figure import Figure

from harness.analysis.loss import DEEPSEEK_V3_BAR
from harness.report.data import ReportData
from harness.report.figures.style import BAR_GREEN, CONTROL_GREY, PALETTE, STYLE, colors, legend_right, linestyles


def loss_figure_name(comparison_id: str) -> str:
    return f"loss-{comparison_id.replace('/', '-')}"


def loss_figure(data: ReportData, comparison_id: str) -> Figure:
    """Both arms' smoothed loss (log axis; BF16 solid beneath, FP8 dashed above, so equal curves both
    show) and, beneath, the signed windowed error (FP8 - BF16) / BF16 against DeepSeek-V3's band.

    One seed per figure, and the title says which. A failed comparison gets the curves only.
    """
    row = next(r for r in data.parity.comparisons if r.id == comparison_id)
    color, style = colors(data), linestyles(data)
    loss = row.loss if row.status == "ok" else None
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(7.2, 4.6), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1)) if loss else (fig.subplots(), None)
        for z, side in enumerate(("baseline", "candidate")):
            series = data.runs[getattr(row, side).run_id]
            steps, smooth = series.smoothed
            arm = series.run.spec.arm
            top.plot(steps, smooth, color=color[arm], ls=style[arm], lw=2.2 if z == 0 else 1.5, zorder=3 + z,
                     label=series.label)  # fmt: skip
        top.set_yscale("log")
        top.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))  # 0.1, 2, 6 rather than 10^-1, 2x10^0
        low, high = top.get_ylim()
        # Minor ticks labelled only within a decade or two: over more, their labels run into each other.
        top.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g") if high / low < 20 else ticker.NullFormatter())
        top.set_ylabel("training loss (EMA, log scale)")
        status = "" if row.status == "ok" else f" - {row.status.upper()}"
        top.set_title(f"Loss: {comparison_id} (a single seed){status}", loc="left")
        legend_right(top)
        if loss is None:
            top.set_xlabel("optimiser step")
            return fig
        bar = 100 * loss.bar
        bottom.axhspan(-bar, bar, color=BAR_GREEN, alpha=0.15, lw=0, label=f"+/-{bar:g}% ({bar_source(loss.bar)})")
        bottom.axhline(0, color="#444444", lw=0.8)
        signed = [100 * e if e is not None else float("nan") for e in loss.window_signed_rel_error]
        # Each window as a flat segment from the step before it to its last step (the first starts after warm-up).
        bottom.stairs(signed, [loss.warmup_steps, *loss.window_end_steps], color=PALETTE[3], lw=1.4,
                      baseline=None, label=f"{loss.window_steps}-step window mean")  # fmt: skip
        bottom.set_ylabel("(control - BF16) / BF16 (%)" if row.control else "(FP8 - BF16) / BF16 (%)")
        bottom.set_xlabel(f"optimiser step (error after warm-up step {loss.warmup_steps})")
        legend_right(bottom)
    return fig


def loss_bias_figure(data: ReportData) -> Figure | None:
    """Signed loss error (FP8 - BF16) per seed and stage/arm, with the mean over seeds and its t interval.

    Whether FP8 costs loss shows in where the seeds' points sit together, not in one seed's
    distance (docs/REPORT.md); BF16 control arms are drawn in grey. With one seed per arm the
    title says so and no interval is drawn. None without signed errors.
    """
    rows = [r for r in data.parity.comparisons if r.status == "ok" and r.loss is not None
            and r.loss.mean_signed_rel_error is not None]  # fmt: skip
    if not rows:
        return None
    groups = sorted({(r.stage, r.arm) for r in rows}, key=lambda g: (any(
        r.control for r in rows if (r.stage, r.arm) == g), g))  # fmt: skip
    color = colors(data)
    single = all(sum(1 for r in rows if (r.stage, r.arm) == g) == 1 for g in groups)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(7.2, 1.5 + 0.45 * len(groups)), layout="constrained")
        ax = fig.subplots()
        bar = 100 * DEEPSEEK_V3_BAR
        ax.axvspan(-bar, bar, color=BAR_GREEN, alpha=0.15, lw=0, label=f"+/-{bar:g}% (DeepSeek-V3)")
        ax.axvline(0, color="#444444", lw=0.8)
        for i, (stage, arm) in enumerate(groups):
            mine = [r for r in rows if (r.stage, r.arm) == (stage, arm)]
            c = CONTROL_GREY if mine[0].control else color.get(arm, PALETTE[1])
            ax.plot([100 * r.loss.mean_signed_rel_error for r in mine], [i] * len(mine), "o", ms=5, mfc="none",
                    color=c, label="each seed" if i == 0 else None)  # fmt: skip
            summary = data.parity.summary_of(stage, arm)
            bias = summary.loss_bias if summary else None
            if bias and bias.ci_low is not None:
                ax.errorbar(100 * bias.value, i, xerr=[[100 * (bias.value - bias.ci_low)],
                            [100 * (bias.ci_high - bias.value)]], fmt="D", color=c, capsize=3,
                            label="mean over seeds, 95% t interval" if i == 0 else None)  # fmt: skip
        labels = [f"{stage}/{arm}" + (" (control)" if any(r.control for r in rows
                  if (r.stage, r.arm) == (stage, arm)) else "") for stage, arm in groups]  # fmt: skip
        ax.set_yticks(range(len(groups)), labels)
        ax.set_ylim(len(groups) - 0.5, -0.5)  # first group on top, half a row of room at both ends
        ax.margins(x=0.15)  # no point on the frame
        ax.set_xlabel("mean signed loss error (FP8 - BF16) / BF16 (%) over the run's windows")
        title = "Loss bias over seeds" + (" (single seed: no interval)" if single else "")
        ax.set_title(title, loc="left")
        legend_right(ax)
    return fig


def bar_source(bar: float) -> str:
    """Whose loss bar a figure draws: DeepSeek-V3's 0.25%, or the stage's own `loss_parity_bar`."""
    return "DeepSeek-V3" if abs(bar - DEEPSEEK_V3_BAR) < 1e-12 else "the stage's loss_parity_bar"
