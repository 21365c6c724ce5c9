"""prepare_run_dir: a run folder from an older harness keeps its results; another configuration is refused."""

from __future__ import annotations

import json

import pytest

from harness.analysis.synthetic import synthetic_suite
from harness.engine import prepare_run_dir
from harness.errors import InvalidInput
from harness.suite import plan


def _spec(**stage):
    suite = synthetic_suite()
    if stage:
        suite = suite.model_copy(update={"stages": {"cpt": suite.stages["cpt"].model_copy(update=stage)}})
    return next(s for s in plan(suite) if s.arm == "fp8")


def test_a_spec_written_before_a_field_existed_still_matches(tmp_path):
    spec = _spec()
    run_dir = prepare_run_dir(tmp_path, spec)
    old = json.loads(run_dir.spec.read_text())
    del old["model"]["loss_chunk_tokens"]  # what a harness without that field wrote
    old["fingerprint"] = "0123456789abcdef"  # and the fingerprint it computed without it
    run_dir.spec.write_text(json.dumps(old))
    (run_dir.path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')  # finished work
    assert prepare_run_dir(tmp_path, spec).path == run_dir.path
    assert json.loads(run_dir.spec.read_text())["fingerprint"] == spec.fingerprint
    assert (run_dir.path / "metrics.jsonl").read_text() == '{"step": 1, "loss": 2.0}\n'


def test_another_configuration_in_the_same_folder_is_refused(tmp_path):
    prepare_run_dir(tmp_path, _spec())
    with pytest.raises(InvalidInput, match="different configuration.*another --runs-dir"):
        prepare_run_dir(tmp_path, _spec(seq_len=256))


def test_a_spec_this_version_cannot_read_is_a_different_configuration(tmp_path):
    spec = _spec()
    run_dir = prepare_run_dir(tmp_path, spec)
    old = json.loads(run_dir.spec.read_text())
    old["model"]["a_field_from_the_future"] = 1
    old["fingerprint"] = "0123456789abcdef"
    run_dir.spec.write_text(json.dumps(old))
    with pytest.raises(InvalidInput, match="different configuration"):
        prepare_run_dir(tmp_path, spec)
