"""`harness report`: one self-contained HTML page (plus paper figures and tables) for a suite.

The page has no scripts, no external fonts, images or styles: figures are inline SVG and the
CSS is in the page, so it can be attached to a paper or a CI artifact and opened offline.
Every string that comes from a suite, manifest, dataset or model output is escaped by Jinja2's
autoescape; only the SVG produced by our own figure code is inserted as markup.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from harness.analysis.results import PARITY_FILE, Parity, read_parity
from harness.gate import GateResult
from harness.recipes import is_emulated
from harness.report import export, figures, tables
from harness.report.data import ReportData, load_report_data
from harness.report.verdicts import gate_view
from harness.store import atomic_write_text

TEMPLATE = "report.html.j2"


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, fmt=".3f": "-" if v is None else format(v, fmt)
    env.filters["pct"] = lambda v, fmt="+.1f": "-" if v is None else format(v, fmt) + "%"
    env.filters["gb"] = lambda v: "-" if v is None else f"{v / 1e9:.2f} GB"
    env.filters["ci"] = lambda e, fmt=".3f": "-" if not e else (
        f"{format(e.value, fmt)} [{format(e.ci_low, fmt)}, {format(e.ci_high, fmt)}]")  # fmt: skip
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
    return env


def _environment_rows(data: ReportData) -> list[dict]:
    rows = []
    for run_id, series in sorted(data.runs.items()):
        m = series.run.manifest
        rows.append({
            "run_id": run_id, "arm": series.run.spec.arm, "recipe": series.run.spec.recipe,
            "status": series.run.status, "reason": m.get("reason"),
            "badge": series.run.emulated and not is_emulated(series.run.spec.recipe),  # the recipe may say it
            "label": m.get("label"), "synthetic": bool(m.get("synthetic")), "manifest": m,
            "fingerprint": series.run.spec.fingerprint,
        })  # fmt: skip
    return rows


def render(data: ReportData, figs: dict, gates: GateResult | None = None) -> str:
    """The report page as a string (pure rendering of already-loaded data)."""
    parity = data.parity
    inline = {name: Markup(figures.inline_svg(fig, name)) for name, fig in figs.items() if fig is not None}
    first = next(iter(data.runs.values()))
    nvml_missing = [s.run.spec.run_id for s in data.runs.values() if s.nvml is None]
    context = {
        "parity": parity,
        "suite": parity.suite,
        "gates": gate_view(parity, gates),
        "headline": tables.headline_table(parity),
        "eval_table": tables.eval_table(parity),
        "lengths_table": tables.lengths_table(parity),
        "comparisons": parity.comparisons,
        "failed": parity.failed,
        "figs": inline,
        "loss_figs": {r.id: inline.get(figures.loss_figure_name(r.id)) for r in parity.comparisons},
        "gates_json": parity.gates.model_dump(mode="json", exclude_none=True) if parity.gates else None,
        "nvml_missing": nvml_missing,
        "agreement": data.agreement,
        "environment": _environment_rows(data),
        "synthetic": any(s.run.manifest.get("synthetic") for s in data.runs.values()),
        "spec": first.run.spec.model_dump(mode="json"),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return _env().get_template(TEMPLATE).render(**context)


def write_report(suite_dir: Path, out_dir: Path, parity: Parity | None = None, gates: GateResult | None = None) -> Path:
    """Write out_dir/index.html, out_dir/figures/*.{pdf,svg} and out_dir/tables/*.{md,tex}.

    The numbers are parity's (default: the suite's parity.json; a suite not compared yet is
    compared first, without recording it in the results index); the runs give the curves. The
    gate section shows `gates` (what `harness run` just checked), else the stored [gates] checked here.
    """
    suite_dir = Path(suite_dir)
    if parity is None:
        path = suite_dir / PARITY_FILE
        if path.is_file():
            parity = read_parity(path)
        else:
            from harness.analysis.compare import compare_suite

            parity = compare_suite(suite_dir, record=False)
    data = load_report_data(suite_dir, parity)
    out_dir = Path(out_dir)
    figs = figures.all_figures(data)
    try:
        figures.write_figures(figs, out_dir / "figures")
        export.write_tables(parity, out_dir / "tables")
        page = render(data, figs, gates)
    finally:
        figures.close_all(figs)
    path = out_dir / "index.html"
    atomic_write_text(path, page)
    return path
