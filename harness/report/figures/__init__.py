"""Report figures (matplotlib, Agg): inline SVG for the HTML page, PDF and SVG files for papers.

Text in the SVGs is drawn as paths (svg.fonttype "path"), so no font is needed and no string
from a suite ends up as markup; comments are stripped and element ids are made unique per
figure so several figures can live inline in one page. Every figure uses style.STYLE (one font,
one size), puts its legend beside the data, and says when it shows a single seed.

    loss.py        each comparison's loss curves and windowed error; loss bias over seeds
    runs.py        step-time distributions, NVML memory and power, kernel time per step
    evaluation.py  the forest plot of score deltas
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from harness.report.data import ReportData
from harness.report.figures.evaluation import eval_figure
from harness.report.figures.loss import loss_bias_figure, loss_figure, loss_figure_name
from harness.report.figures.runs import kernel_figure, nvml_figure, step_time_figure
from harness.report.figures.style import STYLE

__all__ = ["all_figures", "close_all", "eval_figure", "inline_svg", "kernel_figure", "loss_bias_figure",
           "loss_figure", "loss_figure_name", "nvml_figure", "step_time_figure", "write_figures"]  # fmt: skip


def all_figures(data: ReportData) -> dict[str, Figure | None]:
    """name -> figure, in report order (None: not drawable from this suite's data)."""
    figs: dict[str, Figure | None] = {}
    for row in data.parity.comparisons:
        drawable = row.baseline.run_id in data.runs and row.candidate.run_id in data.runs
        windows = row.loss is not None and bool(row.loss.window_end_steps)
        if drawable and (windows or row.status != "ok"):  # a failed arm's curves show where it stopped
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
