"""The gates are one table of specs: the suite's thresholds, the CLI flags and the index columns follow it."""

import subprocess
import sys

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.gate import GATES
from harness.results_index import ResultsIndex
from harness.suite import Thresholds


def test_every_threshold_field_has_exactly_one_gate_spec():
    assert sorted(s.field for s in GATES) == sorted(Thresholds.model_fields)


def test_every_gate_has_its_command_line_flag():
    out = subprocess.run([sys.executable, "-m", "harness.cli", "gate", "--help"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    for spec in GATES:
        assert spec.flag in out, spec.flag


def test_the_results_index_keeps_every_gate_value_a_comparison_has(tmp_path):
    arms = {"bf16": "bf16", "bf16-control": "bf16", "fp8": "te:blockwise"}
    suite_dir = write_synthetic_suite(tmp_path / "runs", synthetic_suite(arms=arms))
    parity = compare_suite(suite_dir, n_resamples=100)
    [row] = [r for r in ResultsIndex(tmp_path / "runs" / "index.sqlite").comparisons("synth") if r["arm"] == "fp8"]
    fp8 = next(c for c in parity.comparisons if c.arm == "fp8")
    for spec in GATES:
        if spec.index_column:
            assert row[spec.index_column] == spec.value_of(fp8), spec.name
    assert row["loss_excess_over_control"] == fp8.loss.excess_over_noise
