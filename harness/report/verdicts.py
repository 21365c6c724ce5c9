"""The report's gate section: each gate's result, and why a verdict and a gate may disagree.

A verdict asks whether FP8 was *shown* equivalent to BF16 (a score CI inside the margin, every
loss window under DeepSeek-V3's bar); a gate asks whether a point estimate stays within a CI
job's threshold. They can disagree, e.g. a score drop of 20 points with a CI clear of zero is
"worse" while a 20-point drop gate passes. The report then says so, naming the numbers on both
sides, instead of leaving a researcher to find the contradiction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.analysis.loss import DEEPSEEK_V3_BAR
from harness.analysis.results import Comparison, Parity
from harness.gate import GateResult, GateRow, run_gates

NOT_EQUIVALENT = ("worse", "inconclusive")


@dataclass
class GateView:
    """What the report shows of the gates: the result (None: no gates stored) and the notes."""

    result: GateResult | None
    source: str  # where the thresholds came from
    notes: list[str] = field(default_factory=list)  # one per comparison whose verdict and gates disagree

    @property
    def outcome(self) -> str:
        return self.result.outcome if self.result else "NO GATES"

    @property
    def css(self) -> str:
        return {0: "parity", 1: "worse"}.get(self.result.exit_code, "inconclusive") if self.result else "inconclusive"


def gate_view(parity: Parity, result: GateResult | None = None) -> GateView:
    """The gates of `result` (what `harness run` just checked) or, without one, of the suite's stored [gates]."""
    if result is not None:
        source = "as checked by `harness run` (the suite's [gates])"
    elif parity.gates is not None and parity.gates.any_set():
        result = run_gates(parity, parity.gates)
        source = "the suite's [gates] stored in parity.json (regression gates need the results index: `harness gate`)"
    else:
        return GateView(None, "no [gates] in the suite; `harness gate` takes thresholds as flags")
    view = GateView(result, source)
    for row in parity.comparisons:
        if row.status == "ok" and not row.control:
            note = disagreement(row, [r for r in result.rows if r.subject in (row.id, f"{row.stage}/{row.arm}")])
            if note:
                view.notes.append(note)
    return view


def disagreement(row: Comparison, gates: list[GateRow]) -> str | None:
    """A sentence explaining why this comparison's verdict and its gates disagree, or None when they agree."""
    checked = [g for g in gates if g.status in ("pass", "fail")]
    failed = [g for g in checked if g.status == "fail"]
    if not checked:
        return None
    if row.verdict in NOT_EQUIVALENT and not failed:
        reasons = _why_not_equivalent(row, {g.gate: g for g in checked})
        return (f"{row.id}: the verdict is {row.verdict} while every gate passed. " + " ".join(reasons) +
                " The verdict asks whether parity was shown; a gate only bounds a point estimate. Tighten the gates, "
                "or make the design able to show parity (more problems, samples or seeds).")  # fmt: skip
    if row.verdict in ("parity", "better") and failed:
        names = "; ".join(f"{g.gate} {g.value_text} (passes when {g.threshold_text})" for g in failed)
        return f"{row.id}: the quality verdict is {row.verdict}, but gates failed: {names}."
    return None


def _why_not_equivalent(row: Comparison, gates: dict[str, GateRow]) -> list[str]:
    reasons = []
    verdicts, loss = row.verdicts, row.loss
    if verdicts.loss != "parity" and loss is not None and loss.max_rel_error is not None:
        gate = gates.get("loss_rel_error")
        held = f"the max_loss_rel_error gate allows {gate.threshold_text}" if gate else "no loss gate checks this stage"
        whose = "DeepSeek-V3's" if abs(loss.bar - DEEPSEEK_V3_BAR) < 1e-12 else "the stage's"
        reasons.append(f"Loss {verdicts.loss}: max windowed error {loss.max_rel_error:.3%} against {whose} "
                       f"{loss.bar:.2%} bar; {held}.")  # fmt: skip
    for bench, e in sorted(row.eval.items()):
        if e.verdict == "parity":
            continue
        d = e.delta
        where = {"worse": "lies below 0", "better": "lies above 0"}.get(
            e.verdict, f"reaches outside the +/-{e.margin_points:g} point margin"
        )
        gate = gates.get(f"score_drop:{bench}")
        held = f"the score_drop gate passes any delta {gate.threshold_text}" if gate else "no score gate checks it"
        reasons.append(f"{bench} {e.verdict}: FP8 - BF16 {d.value:+.1f} points, whose 95% CI "
                       f"[{d.ci_low:+.1f}, {d.ci_high:+.1f}] {where}; {held}.")  # fmt: skip
    return reasons
