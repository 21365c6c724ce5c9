import json
import shutil

import pytest

from harness.analysis.pairing import first_difference, load_runs, pair_runs
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.errors import InvalidInput


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_fp8_arm_pairs_with_the_bf16_run_of_the_same_stage_and_seed(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, synthetic_suite(seeds=[0, 1]))
    pairs = pair_runs(load_runs(suite_dir))
    assert [(p.baseline.spec.run_id, p.candidate.spec.run_id) for p in pairs] == [
        ("cpt-bf16-s0", "cpt-fp8-s0"),
        ("cpt-bf16-s1", "cpt-fp8-s1"),
    ]


def test_a_differing_spec_field_is_refused_naming_the_field_and_both_runs(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path)
    _edit_json(suite_dir / "cpt-fp8-s0" / "spec.json", lambda d: d["stage"].update(seq_len=256))
    with pytest.raises(InvalidInput) as err:
        pair_runs(load_runs(suite_dir))
    message = str(err.value)
    assert "stage.seq_len" in message
    assert "cpt-fp8-s0" in message and "cpt-bf16-s0" in message


def test_a_different_torch_version_in_the_manifest_is_refused(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, versions={"fp8": {"torch": "2.12.0"}})
    with pytest.raises(InvalidInput, match="torch version differs"):
        pair_runs(load_runs(suite_dir))


def test_a_different_cublas_in_the_manifest_is_refused(tmp_path):
    # A BF16 arm timed with the image's cuBLAS is no baseline for an FP8 arm with a preloaded newer one.
    suite_dir = write_synthetic_suite(tmp_path, versions={"bf16": {"cublas": "13.1.0"}, "fp8": {"cublas": "13.10.0"}})
    with pytest.raises(InvalidInput, match="cublas version differs"):
        pair_runs(load_runs(suite_dir))


def test_a_candidate_without_its_baseline_run_is_refused(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, synthetic_suite(seeds=[0, 1]))
    shutil.rmtree(suite_dir / "cpt-bf16-s1")
    with pytest.raises(InvalidInput, match="no baseline run 'cpt-bf16-s1'"):
        pair_runs(load_runs(suite_dir))


def test_a_suite_without_a_bf16_arm_is_refused(tmp_path):
    suite = synthetic_suite(arms={"a": "te:blockwise", "b": "emulated:block"})
    suite_dir = write_synthetic_suite(tmp_path, suite)
    with pytest.raises(InvalidInput, match="no baseline arm with recipe 'bf16'"):
        pair_runs(load_runs(suite_dir))


def test_first_difference_walks_nested_dicts_and_lists():
    assert first_difference({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == "a.b[1]"
    assert first_difference({"a": 1}, {"a": 1, "z": 2}) == "z"
    assert first_difference({"a": 1}, {"a": 1}) is None
