"""What the gates found: one row per gate per comparison, the exit code, a table and JUnit XML."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from harness.gate.specs import Unit, fmt

OUTCOMES = {0: "PASSED", 1: "FAILED", 2: "NO VERDICT (missing or invalid data)"}


@dataclass
class GateRow:
    comparison: str  # what is gated, as shown: "sft/fp8/s0 [EMULATED]", "cpt/fp8 (seeds 0, 1, 2)"
    gate: str
    threshold: float | None  # the bound the value is held to (max_score_drop 20 -> -20: FP8 - BF16 >= -20)
    value: float | None
    status: str  # pass | fail | missing | skipped (by design, e.g. a stage with evaluate = false)
    detail: str = ""
    subject: str = ""  # the comparison id ("sft/fp8/s0") or "stage/arm" the row belongs to
    op: str = ""  # ">=" or "<=": how value is held to threshold
    unit: Unit | None = None

    @property
    def threshold_text(self) -> str:
        return "-" if self.threshold is None else f"{self.op} {fmt(self.threshold, self.unit)}".strip()

    @property
    def value_text(self) -> str:
        return fmt(self.value, self.unit)


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

    @property
    def outcome(self) -> str:
        return OUTCOMES[self.exit_code]

    def table(self) -> str:
        """A readable plain-text table (rich, no colour codes) and the outcome line."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title="FP8 parity gates", show_lines=False)
        for name in ("comparison", "gate", "threshold", "value", "result", "detail"):
            table.add_column(name)
        for r in self.rows:
            table.add_row(r.comparison, r.gate, r.threshold_text, r.value_text, r.status.upper(), r.detail)
        buf = io.StringIO()
        Console(file=buf, width=160, color_system=None, force_terminal=False).print(table)
        lines = [buf.getvalue().rstrip(), *(f"problem: {p}" for p in self.problems), f"gates: {self.outcome}"]
        return "\n".join(lines)

    def junit_xml(self) -> str:
        """JUnit XML: one testcase per gate per comparison (missing data is an <error>)."""
        suite = ET.Element("testsuite", name="harness.gate", tests=str(len(self.rows) + len(self.problems)),
                           failures=str(sum(r.status == "fail" for r in self.rows)),
                           errors=str(sum(r.status == "missing" for r in self.rows) + len(self.problems)))  # fmt: skip
        for r in self.rows:
            case = ET.SubElement(suite, "testcase", classname=f"parity.{r.comparison}", name=r.gate)
            message = f"value {r.value_text}, passes when {r.threshold_text}: {r.detail}"
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
