"""harness.preflight on run folders already there: refused before training what compare would refuse
after it. (Suite-level checks and the machine's: tests/reliability/test_bad_input.py SUITE_CASES.)"""

from __future__ import annotations

import json

import pytest

from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.errors import InvalidInput
from harness.preflight import preflight
from harness.suite import plan
from harness.telemetry.manifest import package_version

ARMS = {"bf16": "bf16", "fp8": "emulated:block"}  # both run on a CPU
GATES = {"max_loss_rel_error": 0.5}


def _suite():
    return synthetic_suite(arms=ARMS, gates=GATES)


def _versions(**bf16) -> dict:
    """Manifest versions per arm: this machine's torch and transformers, bf16's overridden by `bf16`."""
    here = {"torch": package_version("torch"), "transformers": package_version("transformers")}
    return {"bf16": {**here, **bf16}, "fp8": here}


def _unfinish(run_dir):
    """Leave a run as a killed process would: manifest still `running`, so preflight will train it."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))


def test_a_finished_run_trained_with_another_torch_is_refused_before_its_pair_trains(tmp_path):
    suite = _suite()
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite, versions=_versions(torch="0.0.1"))
    _unfinish(suite_dir / "cpt-fp8-s0")
    with pytest.raises(InvalidInput) as refused:
        preflight(suite, plan(suite), suite_dir, "suite.toml", evaluate=False)
    assert (
        f"suite.toml: {suite_dir / 'cpt-bf16-s0' / 'manifest.json'}: cpt-bf16-s0 was trained with torch 0.0.1"
        in str(refused.value)
    )
    assert "Use the same torch, or delete" in str(refused.value)


def test_nothing_to_train_means_no_software_check(tmp_path):
    suite = _suite()  # a finished suite can be re-analysed on any machine
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite, versions=_versions(torch="0.0.1"))
    preflight(suite, plan(suite), suite_dir, "suite.toml", evaluate=False)


def test_an_unselected_run_folder_of_another_configuration_is_refused_before_the_selected_run_trains(tmp_path):
    suite = _suite()
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite, versions=_versions())
    spec_file = suite_dir / "cpt-bf16-s0" / "spec.json"
    spec = json.loads(spec_file.read_text())
    spec["stage"]["seq_len"] *= 2
    spec_file.write_text(json.dumps(spec))
    _unfinish(suite_dir / "cpt-fp8-s0")
    fp8_only = [s for s in plan(suite) if s.arm == "fp8"]  # `harness run --arm fp8`
    with pytest.raises(InvalidInput, match=r"cpt-bf16-s0: holds a run of a different configuration"):
        preflight(suite, fp8_only, suite_dir, "suite.toml", evaluate=False)


def test_a_selected_fp8_run_whose_baseline_is_finished_passes(tmp_path):
    suite = _suite()
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite, versions=_versions())
    _unfinish(suite_dir / "cpt-fp8-s0")
    preflight(suite, [s for s in plan(suite) if s.arm == "fp8"], suite_dir, "suite.toml", evaluate=False)
