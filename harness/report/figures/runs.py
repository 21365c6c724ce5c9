"""Figures of what each run measured: step-time distributions, NVML memory and power, kernel time."""

from __future__ import annotations

import statistics

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from harness.report.data import ReportData
from harness.report.figures.style import STYLE, colors, legend_right, linestyles

GB = 1e9
# boxplot's `vert` became `orientation` in matplotlib 3.10 (and `vert` is deprecated there).
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(map(int, matplotlib.__version__.split(".")[:2])) >= (3, 10)
    else {"vert": False}
)
# Kernel kinds in drawing order (harness.telemetry.kernels.KINDS plus "other"), each its own colour.
KERNEL_KINDS = ("gemm", "attention", "fp8 cast/transpose", "inductor fused", "norm", "communication", "other")
KERNEL_COLORS = ("#3b5b92", "#3a9d5d", "#e07b39", "#7a5195", "#b23a48", "#d4a017", "#8c8c8c")


def _run_name(series) -> str:
    return series.run.spec.run_id + (" (EMULATED)" if series.run.emulated else "")


def step_time_figure(data: ReportData) -> Figure:
    """Distribution of steady-state step times per run (box plots with the points)."""
    series = [s for s in data.runs.values() if s.steady_step_time_s]
    color = colors(data)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(7.2, 0.9 + 0.45 * max(1, len(series))), layout="constrained")
        ax = fig.subplots()
        if series:
            values = [s.steady_step_time_s for s in series]
            box = ax.boxplot(values, patch_artist=True, widths=0.6, showfliers=False, **_HORIZONTAL)
            for patch, s in zip(box["boxes"], series, strict=True):
                patch.set_facecolor(color[s.run.spec.arm])
                patch.set_alpha(0.45)
            for i, v in enumerate(values, 1):
                ax.plot(v, [i] * len(v), "|", color="#333333", alpha=0.35, ms=6)
            ax.set_yticks(range(1, len(series) + 1), [_run_name(s) for s in series])
        ax.set_xlabel("step time (s), warm-up and checkpoint steps excluded")
        emulated = any(s.run.emulated for s in series)
        note = " - emulated FP8: not a speed measurement" if emulated else ""
        ax.set_title(f"Step-time distribution{note}", loc="left")
    return fig


def nvml_figure(data: ReportData) -> Figure | None:
    """Device memory used and power over time per run; None when no run has NVML samples."""
    series = [s for s in data.runs.values() if s.nvml is not None]
    if not series:
        return None
    color, style = colors(data), linestyles(data)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(8.4, 2.8), layout="constrained")
        mem, power = fig.subplots(1, 2)
        for s in series:
            frame = s.nvml.groupby("time_s").agg({"memory_used_bytes": "max", "power_w": "sum"}).reset_index()
            line = {"color": color[s.run.spec.arm], "lw": 1.2, "ls": style[s.run.spec.arm]}
            mem.plot(frame["time_s"], frame["memory_used_bytes"] / GB, **line)
            power.plot(frame["time_s"], frame["power_w"], label=_run_name(s), **line)
        mem.set(title="NVML memory used (max over GPUs)", xlabel="time (s)", ylabel="GB")
        power.set(title="NVML power (sum over GPUs)", xlabel="time (s)", ylabel="W")
        legend_right(power)
    return fig


def kernel_figure(data: ReportData) -> Figure | None:
    """GPU kernel time per step by kind for every profiled run (stacked bars), with its median step time.

    None when no run has a profile.json. The bars come from the profiled warm-up steps, the
    tick from the steady steps: the gap between them is time the GPU had no kernel running.
    """
    series = [s for s in data.runs.values() if s.profile]
    if not series:
        return None
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(7.2, 1.6 + 0.45 * len(series)), layout="constrained")
        ax = fig.subplots()
        labelled: set[str] = set()  # each kind in the legend once, from whichever run has it first
        for i, s in enumerate(series):
            left = 0.0
            per_kind = s.profile["per_step_ms"]
            kinds = [k for k in KERNEL_KINDS if k in per_kind] + [k for k in per_kind if k not in KERNEL_KINDS]
            for kind in kinds:
                c = KERNEL_COLORS[KERNEL_KINDS.index(kind)] if kind in KERNEL_KINDS else "#cccccc"
                ax.barh(i, per_kind[kind], left=left, color=c, height=0.6, label=None if kind in labelled else kind)
                labelled.add(kind)
                left += per_kind[kind]
            if s.steady_step_time_s:
                median_ms = 1e3 * statistics.median(s.steady_step_time_s)
                ax.plot([median_ms], [i], "|", color="#222222", ms=16, mew=2,
                        label="median step time" if i == 0 else None)  # fmt: skip
        ax.set_yticks(range(len(series)), [_run_name(s) for s in series])
        ax.invert_yaxis()
        unit = "GPU kernel" if all(s.profile.get("device") != "cpu" for s in series) else "kernel / CPU operator"
        ax.set_xlabel(f"{unit} time per step (ms), profiled warm-up steps\n(tick: median steady step time)")
        ax.set_title("Where the step time goes", loc="left")
        legend_right(ax)
    return fig
