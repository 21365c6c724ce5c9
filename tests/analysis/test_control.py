"""A second BF16 arm is a control: it sets the noise floor the FP8 arms' loss error is judged against."""

import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.cli import main
from harness.gate import run_gates
from harness.suite import GatesConfig

ARMS = {"bf16": "bf16", "bf16-control": "bf16", "fp8": "te:blockwise"}
STEP_TIMES = {"bf16": 3.17, "bf16-control": 3.17, "fp8": 2.95}
ALLOC = {"bf16": 57.8, "bf16-control": 57.8, "fp8": 51.7}


def _parity(tmp_path, fp8_offset: float, control_offset: float = 0.004, arms=ARMS):
    suite_dir = write_synthetic_suite(
        tmp_path / "runs", synthetic_suite(arms=arms), step_time_s=STEP_TIMES, peak_alloc_gb=ALLOC,
        loss_offset={"bf16-control": control_offset, "fp8": fp8_offset},
    )  # fmt: skip
    return compare_suite(suite_dir, {"max_loss_excess_over_control": 0.002}, record=False, n_resamples=200)


def _row(parity, arm: str):
    return next(r for r in parity.comparisons if r.arm == arm and r.stage == "cpt")


def test_the_control_row_is_marked_and_the_fp8_row_carries_its_noise_floor(tmp_path):
    parity = _parity(tmp_path, fp8_offset=0.005)
    control, fp8 = _row(parity, "bf16-control"), _row(parity, "fp8")
    assert control.control is True and control.verdict == "control"
    assert fp8.control is False
    assert fp8.loss.control_arm == "bf16-control"
    assert fp8.loss.noise_floor == pytest.approx(control.loss.max_rel_error)
    assert fp8.loss.excess_over_noise == pytest.approx(fp8.loss.max_rel_error - control.loss.max_rel_error)
    assert next(s for s in parity.summary if s.arm == "bf16-control").verdict == "control"


def test_fp8_within_the_noise_floor_passes_and_beyond_it_fails(tmp_path):
    near = run_gates(_parity(tmp_path / "a", fp8_offset=0.005), GatesConfig(max_loss_excess_over_control=0.002))
    far = run_gates(_parity(tmp_path / "b", fp8_offset=0.012), GatesConfig(max_loss_excess_over_control=0.002))
    assert near.exit_code == 0
    assert far.exit_code == 1
    [failed] = [r for r in far.rows if r.status == "fail"]
    assert failed.gate == "loss_excess_over_control" and "fp8" in failed.comparison


def test_the_control_itself_is_not_gated_as_fp8(tmp_path):
    # The control is no faster than BF16: a speed-up gate must not fail it.
    result = run_gates(_parity(tmp_path, fp8_offset=0.005), GatesConfig(min_speedup=1.05))
    assert result.exit_code == 0
    [control] = [r for r in result.rows if "bf16-control" in r.comparison]
    assert (control.gate, control.status) == ("control", "skipped")


def test_without_a_control_arm_the_gate_is_missing_and_says_how_to_add_one(tmp_path, capsys):
    parity = _parity(tmp_path, fp8_offset=0.005, arms={"bf16": "bf16", "fp8": "te:blockwise"})
    assert _row(parity, "fp8").loss.noise_floor is None
    assert main(["gate", str(tmp_path / "runs" / "synth")]) == 2
    assert 'bf16-control = "bf16"' in capsys.readouterr().out
