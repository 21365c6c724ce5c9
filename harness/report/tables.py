"""The report's tables as typed rows, from a parity.json (harness/report/export.py writes them out).

The headline is in InfiR2's terms: time reduction, memory reduction, throughput increase and
the score of each arm, per stage and FP8 arm (averaged over seeds). Differences are FP8 - BF16;
"reduction" and "increase" columns say their direction in their names. An emulated arm makes no
speed or memory claim: its cost cells read "not measured (emulated)".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.analysis.results import Parity, SeedMean
from harness.recipes import is_emulated

NOT_MEASURED = "not measured (emulated)"


@dataclass
class Row:
    """One table row: display strings, and what the HTML page marks up (never parsed back from them)."""

    cells: list[str]
    label_col: int = 0  # the cell naming the arm or comparison
    badge: bool = False  # mark that cell EMULATED (an emulated arm whose label does not already say so)
    verdict: str | None = None  # the last cell's verdict, for its colour

    def html_cells(self) -> list[tuple[int, str, int]]:
        """(index, text, colspan): runs of "not measured (emulated)" merged into one cell on the page."""
        out: list[tuple[int, str, int]] = []
        for i, text in enumerate(self.cells):
            if out and text == NOT_MEASURED and out[-1][1] == NOT_MEASURED:
                index, _, span = out[-1]
                out[-1] = (index, text, span + 1)
            else:
                out.append((i, text, 1))
        return out


@dataclass
class Table:
    headers: list[str]
    rows: list[Row] = field(default_factory=list)

    def text_rows(self) -> list[list[str]]:
        """Rows as plain strings for Markdown and LaTeX, emulated arms marked in their label cell."""
        out = []
        for row in self.rows:
            cells = list(row.cells)
            if row.badge:
                cells[row.label_col] += " EMULATED"
            out.append(cells)
        return out


def _pct(value: float | None, sign: bool = True) -> str:
    return "-" if value is None else (f"{value:+.1f}%" if sign else f"{value:.1f}%")


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def arm_label(arm: str, recipe: str) -> str:
    """ "fp8 (emulated:block)": the recipe says it is emulated, so no EMULATED badge is added to it."""
    return f"{arm} ({recipe})"


def headline_table(parity: Parity) -> Table:
    """One row per (stage, FP8 arm), averaged over seeds."""
    benches = sorted({b for s in parity.summary for b in s.scores})
    table = Table(["Stage", "Arm", "Time reduction", "Memory reduction", "Throughput increase", "Speed-up",
                   "Loss (FP8 - BF16) / BF16", *[f"{b} (BF16 / FP8)" for b in benches], "Verdict"])  # fmt: skip
    for s in parity.summary:
        scores = [
            f"{_num(s.scores[b].baseline)} / {_num(s.scores[b].candidate)}" if b in s.scores else "-" for b in benches
        ]
        if s.cost_not_measured:
            cost = [NOT_MEASURED] * 4
        else:
            memory = _pct(s.memory_reduction_pct, False)
            if s.memory_source and s.memory_source != "allocator peak" and s.memory_reduction_pct is not None:
                memory += f" ({s.memory_source})"
            speedup = "-" if s.speedup is None else f"{s.speedup:.3f}x"
            cost = [_pct(s.time_reduction_pct, False), memory, _pct(s.throughput_increase_pct, False), speedup]
            if s.cost_diverged:  # measured, but void: the FP8 loss left BF16's
                cost = [f"{c} (void: FP8 loss diverged)" for c in cost]
        verdict = s.verdict + (f" (seeds {s.failed_seeds} failed)" if s.failed_seeds else "")
        cells = [s.stage, arm_label(s.arm, s.recipe), *cost, loss_bias(s.loss_bias), *scores, verdict]
        table.rows.append(Row(cells, label_col=1, badge=s.emulated and not is_emulated(s.recipe), verdict=s.verdict))
    return table


def loss_bias(bias: SeedMean | None) -> str:
    """Signed mean loss error across seeds, e.g. "+0.91% (1 seed, no interval)" or "+0.21% [-0.40, +0.82] (3 seeds)"."""
    if bias is None:
        return "-"
    if bias.ci_low is None:
        return f"{bias.value:+.2%} ({bias.n} seed, no interval)"
    return f"{bias.value:+.2%} [{bias.ci_low * 100:+.2f}, {bias.ci_high * 100:+.2f}] ({bias.n} seeds)"


def eval_table(parity: Parity) -> Table:
    """One row per comparison and benchmark, delta with its 95% CI, the margin and what the design resolves."""
    table = Table(["Comparison", "Benchmark", "k", "Problems", "BF16 avg@k", "FP8 avg@k", "FP8 - BF16 [95% CI]",
                   "Margin", "Resolvable margin", "Verdict"])  # fmt: skip
    for row in parity.comparisons:
        for bench, e in sorted(row.eval.items()):
            d = e.delta
            resolvable = "-" if e.resolvable_margin_points is None else f"+/-{e.resolvable_margin_points:.1f}"
            if e.underpowered:
                resolvable += " (above the margin)"
            verdict = e.verdict + (" (truncation)" if e.not_conclusive else "")
            cells = [row.id, bench, str(e.k), str(e.n_problems), _num(e.baseline_avg_at_k),
                     _num(e.candidate_avg_at_k), f"{d.value:+.1f} [{d.ci_low:+.1f}, {d.ci_high:+.1f}]",
                     f"+/-{e.margin_points:g}", resolvable, verdict]  # fmt: skip
            table.rows.append(Row(cells, label_col=0, badge=row.emulated, verdict=e.verdict))
    return table


def _pair(base, cand, fmt: str) -> str:
    return f"{_num(base, fmt)} / {_num(cand, fmt)}"


def lengths_table(parity: Parity) -> Table:
    """Per comparison and benchmark, both arms' output lengths, truncation and evaluation cost (BF16 / FP8)."""
    table = Table(["Comparison", "Benchmark", "Output tokens, mean", "Output tokens, p95", "Hit max_tokens",
                   "Eval wall time (s)", "GPU-hours", "Data parallel"])  # fmt: skip
    for row in parity.comparisons:
        for bench, e in sorted(row.eval.items()):
            b, c = e.baseline_lengths, e.candidate_lengths
            truncated = "-" if b.truncation_rate is None and c.truncation_rate is None else (
                f"{_pct(_scale(b.truncation_rate), False)} / {_pct(_scale(c.truncation_rate), False)}")  # fmt: skip
            cells = [row.id, bench, _pair(b.output_tokens_mean, c.output_tokens_mean, ".0f"),
                     _pair(b.output_tokens_p95, c.output_tokens_p95, ".0f"), truncated,
                     _pair(b.wall_time_s, c.wall_time_s, ".0f"), f"{_hours(b.gpu_hours)} / {_hours(c.gpu_hours)}",
                     _pair(b.data_parallel_size, c.data_parallel_size, "d")]  # fmt: skip
            table.rows.append(Row(cells, label_col=0, badge=row.emulated))
    return table


def _hours(value: float | None) -> str:
    """GPU-hours: two decimals, or two significant digits below 0.1 (a short eval is 0.0042, not 0.00)."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def _scale(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction
