"""Checking a parity.json against thresholds: every spec of harness.gate.specs, per comparison or arm."""

from __future__ import annotations

from pathlib import Path

from harness.analysis.results import Parity, parity_from
from harness.gate.result import GateResult, GateRow
from harness.gate.specs import GATES, Context, GateSpec, Reading
from harness.results_index import ResultsIndex
from harness.suite import GatesConfig, Thresholds


def _rows(subject: str, label: str, spec: GateSpec, threshold: float, readings: list[Reading]) -> list[GateRow]:
    bound = spec.bound(threshold)
    rows = []
    for r in readings:
        row = GateRow(label, r.gate, bound, r.value, "missing", r.detail, subject=subject, op=spec.op, unit=spec.unit)
        if r.skipped is not None:
            row.status, row.value, row.detail = "skipped", None, r.skipped
        elif r.passes is not None:
            row.status = "pass" if r.passes else "fail"
        elif r.value is not None:
            row.status = "pass" if spec.passes(r.value, bound) else "fail"
        rows.append(row)
    return rows


def _active(thresholds: Thresholds, scope: str) -> list[tuple[GateSpec, float]]:
    return [
        (s, getattr(thresholds, s.field))
        for s in GATES
        if s.scope == scope and getattr(thresholds, s.field) is not None
    ]


def run_gates(parity: Parity | dict, gates: GatesConfig, *, history: list[dict] | None = None) -> GateResult:
    """Check every comparison of a parity.json against the gates; history (results-index rows)
    enables the max_regression gate against the last passing comparison of the same arm."""
    result = GateResult()
    parity = parity if isinstance(parity, Parity) else parity_from(parity)
    if not parity.comparisons:
        result.problems.append("parity.json has no comparisons; run `harness compare runs/<suite>` first")
        return result
    if not gates.any_set():
        result.problems.append("no gates set; add [gates] to the suite or pass --min-speedup / --max-memory-ratio ...")
        return result
    ctx = Context(parity.suite, history)
    for row in parity.comparisons:
        label = row.id + (" [EMULATED]" if row.emulated else "")
        if row.status != "ok":
            result.rows.append(GateRow(label, "run", None, None, "fail", row.reason or "arm failed", subject=row.id))
            continue
        if row.control:
            detail = "BF16 control arm: the noise floor of the FP8 arms, not gated as FP8"
            result.rows.append(GateRow(label, "control", None, None, "skipped", detail, subject=row.id))
            continue
        for spec, threshold in _active(gates.for_stage(row.stage), "comparison"):  # [gates.stages.NAME] if any
            if spec.cost and row.cost_not_measured:
                readings = [Reading(spec.name, None, "", skipped=f"not measured: {row.cost_not_measured}")]
            elif spec.cost and row.cost_diverged:  # measured, but not of a computation that trains like BF16
                readings = [Reading(r.gate, r.value, row.cost_diverged, passes=False) for r in spec.read(row, ctx)]
            else:
                readings = spec.read(row, ctx)
            result.rows.extend(_rows(row.id, label, spec, threshold, readings))
    for summary in parity.summary:
        if summary.verdict in ("control", "failed"):
            continue  # a control is not FP8; a failed seed already fails as a `run` row
        subject = f"{summary.stage}/{summary.arm}"
        label = f"{subject} (seeds {', '.join(map(str, summary.seeds))})" + (" [EMULATED]" if summary.emulated else "")
        for spec, threshold in _active(gates.for_stage(summary.stage), "arm"):
            result.rows.extend(_rows(subject, label, spec, threshold, spec.read(summary, ctx)))
    return result


def gate_and_record(parity: Parity, gates: GatesConfig, index_file: Path) -> GateResult:
    """run_gates with the index's earlier comparisons as history (for max_regression), then
    record pass/fail on this comparison's index rows; what `harness gate` and `harness run` do."""
    history = None
    if gates.max_regression is not None and index_file.is_file():
        history = [h for h in ResultsIndex(index_file).comparisons(parity.suite)
                   if h.get("recorded_at") != parity.recorded_at]  # fmt: skip
    result = run_gates(parity, gates, history=history)
    if result.exit_code != 2 and index_file.is_file():
        ResultsIndex(index_file).mark_gated(parity.suite, parity.recorded_at, result.passed)
    return result
