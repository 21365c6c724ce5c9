"""`harness gate`: check parity.json against thresholds; a table, JUnit XML and an exit code.

Exit 0: every gate passed. 1: a gate failed (or an arm failed). 2: no gates, no comparisons or
a gated metric is missing (a gate never passes on missing data). A failure outranks missing.
Thresholds come from parity.json["gates"] (the suite's [gates], stored by `harness compare`);
a stage with a [gates.stages.NAME] table is gated by that table alone; flags override both.
Values are point estimates; each row shows the CI beside it.
"""

from __future__ import annotations

import argparse
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from harness.analysis.results import Comparison, Parity, parity_from, read_parity
from harness.errors import InvalidInput
from harness.store import ResultsIndex, index_path
from harness.suite import GatesConfig, Thresholds

# gate name -> (GatesConfig field, "min" or "max", what the value is)
GATES = {
    "speedup": ("min_speedup", "min", "median step time BF16 / FP8"),
    "memory_ratio": ("max_memory_ratio", "max", "peak allocator memory FP8 / BF16 (NVML when absent)"),
    "loss_rel_error": ("max_loss_rel_error", "max", "max windowed relative loss error"),
    "loss_excess_over_control": (
        "max_loss_excess_over_control", "max", "max windowed loss error minus the BF16 control arm's",
    ),
}  # fmt: skip


@dataclass
class GateRow:
    comparison: str
    gate: str
    threshold: float | None
    value: float | None
    status: str  # pass | fail | missing | skipped (by design, e.g. a stage with evaluate = false)
    detail: str = ""


@dataclass
class GateResult:
    rows: list[GateRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # reasons for exit 2 beyond rows

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        if any(r.status == "fail" for r in self.rows):
            return 1
        if self.problems or any(r.status == "missing" for r in self.rows):
            return 2
        if not any(r.status == "pass" for r in self.rows):
            return 2  # nothing was actually checked
        return 0

    def table(self) -> str:
        """A readable plain-text table (rich, no colour codes) and the outcome line."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title="FP8 parity gates", show_lines=False)
        for name in ("comparison", "gate", "threshold", "value", "result", "detail"):
            table.add_column(name)
        for r in self.rows:
            table.add_row(r.comparison, r.gate, _fmt(r.threshold), _fmt(r.value), r.status.upper(), r.detail)
        buf = io.StringIO()
        Console(file=buf, width=160, color_system=None, force_terminal=False).print(table)
        outcome = {0: "PASSED", 1: "FAILED", 2: "NO VERDICT (missing or invalid data)"}[self.exit_code]
        lines = [buf.getvalue().rstrip(), *(f"problem: {p}" for p in self.problems), f"gates: {outcome}"]
        return "\n".join(lines)

    def junit_xml(self) -> str:
        """JUnit XML: one testcase per gate per comparison (missing data is an <error>)."""
        suite = ET.Element("testsuite", name="harness.gate", tests=str(len(self.rows) + len(self.problems)),
                           failures=str(sum(r.status == "fail" for r in self.rows)),
                           errors=str(sum(r.status == "missing" for r in self.rows) + len(self.problems)))  # fmt: skip
        for r in self.rows:
            case = ET.SubElement(suite, "testcase", classname=f"parity.{r.comparison}", name=r.gate)
            message = f"value {_fmt(r.value)} vs threshold {_fmt(r.threshold)}: {r.detail}"
            if r.status == "fail":
                ET.SubElement(case, "failure", message=message).text = message
            elif r.status == "missing":
                ET.SubElement(case, "error", message=message).text = message
            elif r.status == "skipped":
                ET.SubElement(case, "skipped", message=r.detail)
        for problem in self.problems:
            case = ET.SubElement(suite, "testcase", classname="parity", name="data")
            ET.SubElement(case, "error", message=problem).text = problem
        return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0


def _metric(row: Comparison, gate: str) -> tuple[float | None, str]:
    speed, memory, loss = row.speed, row.memory, row.loss
    if gate == "speedup":
        est = speed.speedup if speed else None
        ci = f"95% CI [{_fmt(est.ci_low)}, {_fmt(est.ci_high)}]" if est else "no steady step times"
        return (est.value if est else None), ci
    if gate == "memory_ratio":
        if memory is None:
            return None, "no memory peaks"
        return memory.headline_ratio, memory.headline_source or "no memory peaks"
    if gate == "loss_excess_over_control":
        if loss is None or loss.noise_floor is None:
            return None, 'no BF16 control arm for this stage and seed; add one, e.g. [arms] bf16-control = "bf16"'
        return loss.excess_over_noise, f"control {loss.control_arm}: {loss.noise_floor:.4g}"
    return (loss.max_rel_error if loss else None), f"{loss.steps_compared if loss else 0} steps compared"


def run_gates(parity: Parity | dict, gates: GatesConfig, *, history: list[dict] | None = None) -> GateResult:
    """Check every comparison of a parity.json against the gates; history (results-index rows)
    enables the max_regression gate against the last passing comparison of the same arm."""
    result = GateResult()
    parity = parity if isinstance(parity, Parity) else parity_from(parity)
    comparisons = parity.comparisons
    if not comparisons:
        result.problems.append("parity.json has no comparisons; run `harness compare runs/<suite>` first")
        return result
    if not gates.any_set():
        result.problems.append("no gates set; add [gates] to the suite or pass --min-speedup / --max-memory-ratio ...")
        return result
    for row in comparisons:
        stage_gates = gates.for_stage(row.stage)  # [gates.stages.NAME] when the stage has one
        active = {
            n: getattr(stage_gates, cfg) for n, (cfg, _, _) in GATES.items() if getattr(stage_gates, cfg) is not None
        }
        label = row.id + (" [EMULATED]" if row.emulated else "")
        if row.status != "ok":
            result.rows.append(GateRow(label, "run", None, None, "fail", row.reason or "arm failed"))
            continue
        if row.control:
            detail = "BF16 control arm: the noise floor of the FP8 arms, not gated as FP8"
            result.rows.append(GateRow(label, "control", None, None, "skipped", detail))
            continue
        for name, threshold in active.items():
            value, detail = _metric(row, name)
            kind = GATES[name][1]
            if value is None:
                status = "missing"
            else:
                status = "pass" if (value >= threshold if kind == "min" else value <= threshold) else "fail"
            result.rows.append(GateRow(label, name, threshold, value, status, f"{GATES[name][2]}; {detail}"))
        if stage_gates.max_score_drop is not None:
            _score_rows(result, label, row, stage_gates.max_score_drop)
        if stage_gates.max_regression is not None and history is not None:
            _regression_rows(result, label, parity.suite, row, stage_gates.max_regression, history)
    _loss_bias_rows(result, parity, gates)
    return result


def _loss_bias_rows(result: GateResult, parity: Parity, gates: GatesConfig) -> None:
    """One row per (stage, FP8 arm): the mean over seeds of FP8's signed loss error (summary loss_bias)."""
    for s in parity.summary:
        limit = gates.for_stage(s.stage).max_loss_bias
        if limit is None:
            continue
        if s.verdict in ("control", "failed"):
            continue  # a control is not FP8; a failed seed already fails as a `run` row
        label = f"{s.stage}/{s.arm} (seeds {', '.join(map(str, s.seeds))})"
        if s.emulated:
            label += " [EMULATED]"
        bias = s.loss_bias
        if bias is None:
            detail = "no signed loss error in parity.json; re-run `harness compare` with this harness version"
            result.rows.append(GateRow(label, "loss_bias", limit, None, "missing", detail))
            continue
        ci = (
            f"95% t interval [{_fmt(bias.ci_low)}, {_fmt(bias.ci_high)}] over {bias.n} seeds"
            if bias.ci_low is not None
            else "1 seed, no interval: add seeds for one"
        )
        status = "pass" if bias.value <= limit else "fail"
        detail = f"mean over seeds of (FP8 - BF16) / BF16 loss, positive: FP8 higher; {ci}"
        result.rows.append(GateRow(label, "loss_bias", limit, bias.value, status, detail))


def _score_rows(result: GateResult, label: str, row: Comparison, max_drop: float) -> None:
    evals = row.eval
    if not evals and row.evaluate is False:
        result.rows.append(GateRow(label, "score_drop", max_drop, None, "skipped", "stage has evaluate = false"))
    elif not evals:
        result.rows.append(GateRow(label, "score_drop", max_drop, None, "missing", "no eval results in both arms"))
    for bench, e in sorted(evals.items()):
        drop = -e.delta.value
        status = "pass" if drop <= max_drop else "fail"
        detail = f"BF16 - FP8 avg@{e.k} points; delta 95% CI [{_fmt(e.delta.ci_low)}, {_fmt(e.delta.ci_high)}]"
        result.rows.append(GateRow(label, f"score_drop:{bench}", max_drop, drop, status, detail))


def _regression_rows(result: GateResult, label: str, suite: str | None, row: Comparison, limit: float,
                     history: list[dict]) -> None:  # fmt: skip
    same = [h for h in history if h.get("suite") == suite and h.get("stage") == row.stage
            and h.get("arm") == row.arm and h.get("seed") == row.seed and h.get("gate_passed") == 1]  # fmt: skip
    if not same:
        result.rows.append(GateRow(label, "regression", limit, None, "pass", "no earlier passing comparison"))
        return
    last = same[-1]
    current = row.speed.speedup if row.speed else None
    value, previous = (current.value if current else None), last.get("speedup")
    if value is None or previous is None:
        result.rows.append(GateRow(label, "regression:speedup", limit, None, "missing", "speed-up unavailable"))
        return
    drop = (previous - value) / previous
    status = "pass" if drop <= limit else "fail"
    detail = f"speed-up fell {drop:.1%} vs {previous:.4g} at {last.get('git_sha') or 'unknown commit'}"
    result.rows.append(GateRow(label, "regression:speedup", limit, drop, status, detail))


# ---------------------------------------------------------------- command line


def load_parity(target: Path) -> tuple[Parity, Path]:
    """parity.json from a file or a suite runs folder."""
    path = target / "parity.json" if target.is_dir() else target
    if not path.is_file():
        suite_dir = target if target.is_dir() else target.parent
        raise InvalidInput(f"{path}: not found; run `harness compare {suite_dir}` first")
    return read_parity(path), path


def resolve_gates(parity: Parity, args: argparse.Namespace) -> GatesConfig:
    """parity.json["gates"] overridden by any flag given on the command line (in every stage's table too)."""
    stored = parity.gates.model_dump(exclude_none=True) if parity.gates else {}
    flags = {f: getattr(args, f) for f in Thresholds.model_fields if getattr(args, f, None) is not None}
    stages = stored.pop("stages", None) or {}
    try:
        return GatesConfig.model_validate({**stored, **flags, "stages": {k: {**v, **flags} for k, v in stages.items()}})
    except ValueError as exc:
        raise InvalidInput(f"gates: invalid threshold ({exc})") from None


def mark_gated(index_file: Path, parity: Parity, passed: bool) -> None:
    """Set gate_passed on this parity.json's rows in the results index (for regression gates)."""
    if index_file.is_file():
        ResultsIndex(index_file).mark_gated(parity.suite, parity.recorded_at, passed)


def gate_and_record(parity: Parity, gates: GatesConfig, index_file: Path) -> GateResult:
    """run_gates with the index's earlier comparisons as history (for max_regression), then
    record pass/fail on this comparison's index rows; what `harness gate` and `harness run` do."""
    history = None
    if gates.max_regression is not None and index_file.is_file():
        history = [h for h in ResultsIndex(index_file).comparisons(parity.suite)
                   if h.get("recorded_at") != parity.recorded_at]  # fmt: skip
    result = run_gates(parity, gates, history=history)
    if result.exit_code != 2:
        mark_gated(index_file, parity, result.passed)
    return result


def configure_gate(parser: argparse.ArgumentParser):
    parser.add_argument("target", type=Path, metavar="PARITY_JSON|SUITE_RUNS_DIR")
    parser.add_argument("--min-speedup", type=float, help="fail when median BF16/FP8 step time is below X")
    parser.add_argument("--max-memory-ratio", type=float, help="fail when FP8/BF16 peak memory is above X")
    parser.add_argument("--max-loss-rel-error", type=float, help="fail when the max windowed loss error is above X")
    parser.add_argument("--max-loss-excess-over-control", type=float,
                        help="fail when the loss error exceeds the BF16 control arm's by more than X")  # fmt: skip
    parser.add_argument("--max-loss-bias", type=float,
                        help="fail when FP8's signed loss error, averaged over seeds, is above X")  # fmt: skip
    parser.add_argument("--max-score-drop", type=float, help="fail when BF16 - FP8 avg@k exceeds X points")
    parser.add_argument("--max-regression", type=float, help="fail when speed-up fell by more than X (fraction)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    parser.add_argument("--runs-dir", type=Path, help="folder of index.sqlite (default: the suite folder's parent)")

    def main(args: argparse.Namespace) -> int:
        parity, path = load_parity(args.target)
        result = gate_and_record(parity, resolve_gates(parity, args), index_path(args.runs_dir or path.parent.parent))
        print(result.table())
        if args.junit:
            args.junit.parent.mkdir(parents=True, exist_ok=True)
            args.junit.write_text(result.junit_xml())
        return result.exit_code

    return main
