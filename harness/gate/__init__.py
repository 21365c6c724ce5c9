"""`harness gate`: check parity.json against thresholds; a table, JUnit XML and an exit code.

Exit 0: every gate passed. 1: a gate failed (or an arm failed). 2: no gates, no comparisons or
a gated metric is missing (a gate never passes on missing data). A failure outranks missing.
Thresholds come from parity.json's gates (the suite's [gates], stored by `harness compare`);
a stage with a [gates.stages.NAME] table is gated by that table alone; flags override both.
Values are point estimates; each row shows the CI beside it.

    specs.py   the gates as a table of GateSpecs (threshold field, direction, reader, index column)
    check.py   run_gates / gate_and_record: every spec over every comparison or (stage, arm)
    result.py  GateRow, GateResult: exit code, table, JUnit XML
    cli.py     the command, its flags generated from the specs
"""

from harness.gate.check import gate_and_record, run_gates
from harness.gate.cli import configure_gate, load_parity, resolve_gates
from harness.gate.result import GateResult, GateRow
from harness.gate.specs import GATES, GateSpec

__all__ = ["GATES", "GateResult", "GateRow", "GateSpec", "configure_gate", "gate_and_record", "load_parity",
           "resolve_gates", "run_gates"]  # fmt: skip
