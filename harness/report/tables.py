"""Headline and eval tables as rows, LaTeX (booktabs) and Markdown, from a parity.json.

The headline is in InfiR2's terms: time reduction, memory reduction, throughput increase and
the score of each arm, per stage and FP8 arm (averaged over seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.analysis.results import Parity, SeedMean
from harness.store import atomic_write_text


@dataclass
class Row:
    """One table row: display strings, and what the HTML page marks up (never parsed back from them)."""

    cells: list[str]
    label_col: int = 0  # the cell naming the arm or comparison: the EMULATED badge goes there
    emulated: bool = False
    verdict: str | None = None  # the last cell's verdict, for its colour


@dataclass
class Table:
    headers: list[str]
    rows: list[Row] = field(default_factory=list)

    def text_rows(self) -> list[list[str]]:
        """Rows as plain strings for Markdown and LaTeX, emulated arms marked in their label cell."""
        out = []
        for row in self.rows:
            cells = list(row.cells)
            if row.emulated:
                cells[row.label_col] += " EMULATED"
            out.append(cells)
        return out


def _pct(value: float | None, sign: bool = True) -> str:
    return "-" if value is None else (f"{value:+.1f}%" if sign else f"{value:.1f}%")


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def headline_table(parity: Parity) -> Table:
    """One row per (stage, FP8 arm), averaged over seeds."""
    benches = sorted({b for s in parity.summary for b in s.scores})
    table = Table(["Stage", "Arm", "Time reduction", "Memory reduction", "Throughput increase", "Speed-up",
                   "Loss vs BF16", *[f"{b} (BF16 / FP8)" for b in benches], "Verdict"])  # fmt: skip
    for s in parity.summary:
        scores = [
            f"{_num(s.scores[b].baseline)} / {_num(s.scores[b].candidate)}" if b in s.scores else "-" for b in benches
        ]
        speedup = "-" if s.speedup is None else f"{s.speedup:.3f}x"
        verdict = s.verdict + (f" (seeds {s.failed_seeds} failed)" if s.failed_seeds else "")
        cells = [s.stage, f"{s.arm} ({s.recipe})", _pct(s.time_reduction_pct, False),
                 _pct(s.memory_reduction_pct, False), _pct(s.throughput_increase_pct, False), speedup,
                 loss_bias(s.loss_bias), *scores, verdict]  # fmt: skip
        table.rows.append(Row(cells, label_col=1, emulated=s.emulated, verdict=s.verdict))
    return table


def loss_bias(bias: SeedMean | None) -> str:
    """Signed mean loss error across seeds, e.g. "+0.91% (1 seed)" or "+0.21% [-0.40, +0.82] (3 seeds)"."""
    if bias is None:
        return "-"
    seeds = f"({bias.n} seed{'s' if bias.n > 1 else ''})"
    if bias.ci_low is None:
        return f"{bias.value:+.2%} {seeds}"
    return f"{bias.value:+.2%} [{bias.ci_low * 100:+.2f}, {bias.ci_high * 100:+.2f}] {seeds}"


def eval_table(parity: Parity) -> Table:
    """One row per comparison and benchmark, delta with its 95% CI."""
    table = Table(["Comparison", "Benchmark", "k", "Problems", "BF16 avg@k", "FP8 avg@k", "Delta [95% CI]", "Margin",
                   "Verdict"])  # fmt: skip
    for row in parity.comparisons:
        for bench, e in sorted(row.eval.items()):
            d = e.delta
            cells = [row.id, bench, str(e.k), str(e.n_problems), _num(e.baseline_avg_at_k),
                     _num(e.candidate_avg_at_k), f"{d.value:+.1f} [{d.ci_low:+.1f}, {d.ci_high:+.1f}]",
                     f"+/-{e.margin_points:g}", e.verdict]  # fmt: skip
            table.rows.append(Row(cells, label_col=0, emulated=row.emulated, verdict=e.verdict))
    return table


def to_markdown(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(headers: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    spec = "ll" + "r" * (len(headers) - 2)
    body = [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", r"\end{table}", "",
    ])  # fmt: skip


def write_tables(parity: Parity, out_dir: Path) -> list[Path]:
    """headline.{md,tex} and eval.{md,tex} under out_dir; returns the paths written."""
    suite = parity.suite
    emulated = " FP8 is emulated (numerics only, no speed claim)." if parity.emulated else ""
    paths = []
    for name, table, caption in (
        ("headline", headline_table(parity), f"FP8 vs BF16 on suite {suite}: cost and scores.{emulated}"),
        ("eval", eval_table(parity), f"Evaluation deltas (FP8 - BF16, avg@k points) on suite {suite}.{emulated}"),
    ):
        rows = table.text_rows()
        for ext, text in (("md", to_markdown(table.headers, rows)),
                          ("tex", to_latex(table.headers, rows, caption, f"tab:{name}"))):  # fmt: skip
            path = out_dir / f"{name}.{ext}"
            atomic_write_text(path, text)
            paths.append(path)
    return paths
