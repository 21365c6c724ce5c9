"""Report figures (matplotlib, Agg): inline SVG for the HTML page, PDF and SVG files for papers.

Text in the SVGs is drawn as paths (svg.fonttype "path"), so no font is needed and no string
from a suite ends up as markup; comments are stripped and element ids are made unique per
figure so several figures can live inline in one page.
"""

from __future__ import annotations

import io
import re
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from harness.analysis.loss import DEEPSEEK_V3_BAR  # noqa: E402
from harness.report.data import ReportData  # noqa: E402

STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "harness",  # deterministic ids, so reports diff cleanly
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}
PALETTE = ("#3b5b92", "#e07b39", "#3a9d5d", "#b23a48", "#7a5195", "#8c8c8c")
GB = 1e9
# boxplot's `vert` became `orientation` in matplotlib 3.10 (and `vert` is deprecated there).
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(map(int, matplotlib.__version__.split(".")[:2])) >= (3, 10)
    else {"vert": False}
)


def _colors(data: ReportData) -> dict[str, str]:
    """Baseline arm first (blue), the others in palette order, stable across figures."""
    base = data.parity.baseline_arm
    arms = sorted({s.run.spec.arm for s in data.runs.values()}, key=lambda a: (a != base, a))
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def loss_figure_name(comparison_id: str) -> str:
    return f"loss-{comparison_id.replace('/', '-')}"


def loss_figure(data: ReportData, comparison_id: str) -> Figure:
    """Smoothed loss of both arms (raw faint behind), windowed relative error beneath with the 0.25% bar."""
    row = next(r for r in data.parity.comparisons if r.id == comparison_id)
    colors = _colors(data)
    with plt.rc_context(STYLE):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.4), sharex=True, height_ratios=(2, 1))
        for side in ("baseline", "candidate"):
            series = data.runs[getattr(row, side).run_id]
            color = colors[series.run.spec.arm]
            raw = [(s, v) for s, v in zip(series.steps, series.loss, strict=True) if v is not None]
            if raw:
                top.plot(*zip(*raw, strict=True), color=color, alpha=0.3, lw=0.8)
            steps, smooth = series.smoothed
            top.plot(steps, smooth, color=color, lw=1.6, label=series.label)
        top.set_ylabel("training loss")
        top.set_title(f"Loss: {comparison_id}")
        top.legend(loc="upper right")
        loss = row.loss
        bottom.step(loss.window_end_steps, [100 * e for e in loss.window_rel_error], where="pre", color="#444444",
                    lw=1.2)  # fmt: skip
        bottom.axhline(100 * DEEPSEEK_V3_BAR, color="#b23a48", ls="--", lw=1, label="0.25% (DeepSeek-V3)")
        bottom.set_ylabel("rel. error (%)")
        bottom.set_xlabel("optimiser step")
        bottom.legend(loc="upper right")
        fig.tight_layout()
    return fig


def step_time_figure(data: ReportData) -> Figure:
    """Distribution of steady-state step times per run (box plots with the points)."""
    series = [s for s in data.runs.values() if s.steady_step_time_s]
    colors = _colors(data)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * max(1, len(series))))
        if series:
            values = [s.steady_step_time_s for s in series]
            box = ax.boxplot(values, patch_artist=True, widths=0.6, showfliers=False, **_HORIZONTAL)
            for patch, s in zip(box["boxes"], series, strict=True):
                patch.set_facecolor(colors[s.run.spec.arm])
                patch.set_alpha(0.45)
            for i, v in enumerate(values, 1):
                ax.plot(v, [i] * len(v), "|", color="#333333", alpha=0.35, ms=6)
            ax.set_yticks(range(1, len(series) + 1), [s.run.spec.run_id + (" (EMU)" if s.run.emulated else "")
                                                      for s in series])  # fmt: skip
        ax.set_xlabel("step time (s), warm-up and checkpoint steps excluded")
        ax.set_title("Step-time distribution")
        fig.tight_layout()
    return fig


def nvml_figure(data: ReportData) -> Figure | None:
    """Device memory used and power over time per run; None when no run has NVML samples."""
    series = [s for s in data.runs.values() if s.nvml is not None]
    if not series:
        return None
    colors = _colors(data)
    with plt.rc_context(STYLE):
        fig, (mem, power) = plt.subplots(1, 2, figsize=(8.0, 2.8))
        for s in series:
            frame = s.nvml.groupby("time_s").agg({"memory_used_bytes": "max", "power_w": "sum"}).reset_index()
            style = {"color": colors[s.run.spec.arm], "lw": 1.2, "ls": "-" if s.run.spec.seed == 0 else ":"}
            mem.plot(frame["time_s"], frame["memory_used_bytes"] / GB, label=s.run.spec.run_id, **style)
            power.plot(frame["time_s"], frame["power_w"], **style)
        mem.set(title="NVML memory used (max over GPUs)", xlabel="time (s)", ylabel="GB")
        power.set(title="NVML power (sum over GPUs)", xlabel="time (s)", ylabel="W")
        mem.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
    return fig


# Kernel kinds in drawing order (harness.telemetry.kernels.KINDS plus "other"), each its own colour.
KERNEL_KINDS = ("gemm", "attention", "fp8 cast/transpose", "inductor fused", "norm", "communication", "other")
KERNEL_COLORS = ("#3b5b92", "#3a9d5d", "#e07b39", "#7a5195", "#b23a48", "#d4a017", "#8c8c8c")


def kernel_figure(data: ReportData) -> Figure | None:
    """GPU kernel time per step by kind for every profiled run (stacked bars), with its median step time.

    None when no run has a profile.json. The bars come from the profiled warm-up steps, the
    tick from the steady steps: the gap between them is time the GPU had no kernel running.
    """
    series = [s for s in data.runs.values() if s.profile]
    if not series:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 1.6 + 0.45 * len(series)))
        for i, s in enumerate(series):
            left = 0.0
            per_kind = s.profile["per_step_ms"]
            kinds = [k for k in KERNEL_KINDS if k in per_kind] + [k for k in per_kind if k not in KERNEL_KINDS]
            for kind in kinds:
                color = KERNEL_COLORS[KERNEL_KINDS.index(kind)] if kind in KERNEL_KINDS else "#cccccc"
                ax.barh(i, per_kind[kind], left=left, color=color, height=0.6, label=kind if i == 0 else None)
                left += per_kind[kind]
            if s.steady_step_time_s:
                median_ms = 1e3 * statistics.median(s.steady_step_time_s)
                ax.plot([median_ms], [i], "|", color="#222222", ms=16, mew=2,
                        label="median step time" if i == 0 else None)  # fmt: skip
        ax.set_yticks(range(len(series)), [s.run.spec.run_id + (" (EMU)" if s.run.emulated else "") for s in series])
        ax.invert_yaxis()
        unit = "GPU kernel" if all(s.profile.get("device") != "cpu" for s in series) else "kernel / CPU operator"
        ax.set_xlabel(f"{unit} time per step (ms), profiled warm-up steps\n(tick: median steady step time)")
        ax.set_title("Where the step time goes")
        # Below the two-line axis label, in the figure's bottom 0.4 inch (two rows of four kinds).
        fig.legend(loc="lower center", ncol=4, fontsize=7)
        fig.tight_layout(rect=(0, 0.4 / fig.get_figheight(), 1, 1))
    return fig


def eval_figure(data: ReportData) -> Figure | None:
    """Forest plot: FP8 - BF16 avg@k per benchmark and comparison, 95% CI, margin band."""
    items = [(f"{r.id} {b}", e) for r in data.parity.comparisons if r.status == "ok"
             for b, e in sorted(r.eval.items())]  # fmt: skip
    if not items:
        return None
    margin = data.parity.margin_points or 0
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 1.4 + 0.4 * len(items)))
        ax.axvspan(-margin, margin, color="#3a9d5d", alpha=0.12)
        ax.axvline(0, color="#444444", lw=0.8)
        for i, (_, e) in enumerate(items):
            d = e.delta
            ax.errorbar(d.value, i, xerr=[[d.value - d.ci_low], [d.ci_high - d.value]], fmt="o",
                        color="#3b5b92", capsize=3)  # fmt: skip
        ax.set_yticks(range(len(items)), [name for name, _ in items])
        ax.invert_yaxis()
        ax.set_xlabel(f"FP8 - BF16 avg@k (points), 95% paired bootstrap CI\nshaded: parity margin +/-{margin:g} points")
        ax.set_title("Evaluation deltas")
        fig.tight_layout()
    return fig


def loss_bias_figure(data: ReportData) -> Figure | None:
    """Signed loss error (FP8 - BF16) per seed and stage/arm, with the mean over seeds and its t interval.

    Whether FP8 costs loss shows in where the seeds' points sit together, not in one seed's
    distance (docs/REPORT.md); BF16 control arms are drawn in grey. None without signed errors.
    """
    rows = [r for r in data.parity.comparisons if r.status == "ok" and r.loss is not None
            and r.loss.mean_signed_rel_error is not None]  # fmt: skip
    if not rows:
        return None
    groups = sorted({(r.stage, r.arm) for r in rows}, key=lambda g: (any(
        r.control for r in rows if (r.stage, r.arm) == g), g))  # fmt: skip
    colors = _colors(data)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 1.4 + 0.45 * len(groups)))
        ax.axvspan(-100 * DEEPSEEK_V3_BAR, 100 * DEEPSEEK_V3_BAR, color="#3a9d5d", alpha=0.12)
        ax.axvline(0, color="#444444", lw=0.8)
        for i, (stage, arm) in enumerate(groups):
            mine = [r for r in rows if (r.stage, r.arm) == (stage, arm)]
            color = "#8c8c8c" if mine[0].control else colors.get(arm, PALETTE[1])
            ax.plot([100 * r.loss.mean_signed_rel_error for r in mine], [i] * len(mine), "o", ms=4,
                    mfc="none", color=color)  # fmt: skip
            summary = data.parity.summary_of(stage, arm)
            bias = summary.loss_bias if summary else None
            if bias and bias.ci_low is not None:
                ax.errorbar(100 * bias.value, i, xerr=[[100 * (bias.value - bias.ci_low)],
                            [100 * (bias.ci_high - bias.value)]], fmt="D", color=color, capsize=3)  # fmt: skip
        labels = [f"{stage}/{arm}" + (" (control)" if any(r.control for r in rows
                  if (r.stage, r.arm) == (stage, arm)) else "") for stage, arm in groups]  # fmt: skip
        ax.set_yticks(range(len(groups)), labels)
        ax.invert_yaxis()
        ax.set_xlabel("signed loss error (FP8 - BF16) / BF16 (%): circles per seed, diamond mean over seeds\n"
                      "with 95% t interval; shaded: +/-0.25%")  # fmt: skip
        ax.set_title("Loss bias over seeds")
        fig.tight_layout()
    return fig


def all_figures(data: ReportData) -> dict[str, Figure | None]:
    """name -> figure, in report order (None: not drawable from this suite's data)."""
    figs: dict[str, Figure | None] = {}
    for row in data.parity.comparisons:
        drawable = row.baseline.run_id in data.runs and row.candidate.run_id in data.runs
        if drawable and row.loss is not None and row.loss.window_end_steps:
            figs[loss_figure_name(row.id)] = loss_figure(data, row.id)
    figs["loss-bias"] = loss_bias_figure(data)
    figs["step-times"] = step_time_figure(data)
    figs["nvml"] = nvml_figure(data)
    figs["kernels"] = kernel_figure(data)
    figs["eval-deltas"] = eval_figure(data)
    return figs


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(fig: Figure, prefix: str) -> str:
    """The figure as an <svg> element for inlining: no XML prolog or comments, ids prefixed."""
    buf = io.StringIO()
    with plt.rc_context(STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", prefix)
    for old in set(_ID.findall(svg)):
        new = f"{prefix}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"').replace(f"#{old})", f"#{new})")
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')
    for _ in range(2):  # drop the fixed size; the viewBox and CSS scale it to the page
        svg = re.sub(r'(<svg[^>]*?)\s(?:width|height)="[^"]*"', r"\1", svg, count=1)
    return svg


def write_figures(figs: dict[str, Figure | None], out_dir: Path) -> list[Path]:
    """Each figure as PDF and SVG under out_dir (for papers); returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context(STYLE):
        for name, fig in figs.items():
            if fig is None:
                continue
            for ext in ("pdf", "svg"):
                path = out_dir / f"{name}.{ext}"
                fig.savefig(path, format=ext, metadata={"CreationDate": None} if ext == "pdf" else {"Date": None})
                paths.append(path)
    return paths


def close_all(figs: dict[str, Figure | None]) -> None:
    for fig in figs.values():
        if fig is not None:
            plt.close(fig)
