"""telemetry.profile_steps: the last warm-up steps of a run profiled into profile.json (on this CPU,
the profiler's operator times stand in for GPU kernels)."""

from __future__ import annotations

import json

import pytest
from trainkit import prepare, specs, tiny_suite

from harness.suite import Suite, fingerprint
from harness.telemetry.kernels import profiled_steps
from harness.train.trainer import train


def _suite(corpus, **telemetry) -> Suite:
    suite = tiny_suite(str(corpus), steps=6, checkpoint_every=None)
    return suite.model_copy(update={"telemetry": suite.telemetry.model_copy(update=telemetry)})


def test_a_run_profiles_its_last_warmup_steps_and_keeps_its_steady_statistics(tmp_path, corpus):
    suite = Suite.model_validate({**_suite(corpus).model_dump(), "telemetry": {"warmup_steps": 3, "profile_steps": 2}})
    spec = specs(suite)["cpt-bf16-s0"]
    run_dir = prepare(tmp_path, spec)
    summary = train(spec, run_dir, quiet=True)

    profile = json.loads(run_dir.profile.read_text())
    assert profile["steps"] == [2, 3] and profile["device"] == "cpu"
    # The tiny model's linears and lm_head are matrix multiplies: they must be found and grouped.
    assert profile["per_step_ms"]["gemm"] > 0
    assert abs(sum(profile["per_step_ms"].values()) - profile["total_ms"]) < 1e-9
    assert abs(sum(k["us_per_step"] for k in profile["kernels"]) / 1e3 - profile["total_ms"]) < 1e-9
    # Only warm-up steps were profiled: the steady statistics still cover steps 4-6.
    assert summary["status"] == "completed" and summary["steady_steps"] == 3


def test_without_profile_steps_no_profile_is_written(tmp_path, corpus):
    spec = specs(_suite(corpus))["cpt-bf16-s0"]
    run_dir = prepare(tmp_path, spec)
    train(spec, run_dir, quiet=True)
    assert not run_dir.profile.exists()


def test_profile_steps_must_leave_an_unprofiled_warmup_step(corpus):
    data = _suite(corpus).model_dump()
    with pytest.raises(
        ValueError, match=r"profile_steps \(3\) must be smaller than warmup_steps \(3\).*raise warmup_steps"
    ):
        Suite.model_validate({**data, "telemetry": {"warmup_steps": 3, "profile_steps": 3}})


def test_a_profiled_arm_still_matches_an_unprofiled_one(corpus):
    plain = specs(_suite(corpus, warmup_steps=3))["cpt-bf16-s0"]
    profiled = specs(_suite(corpus, warmup_steps=3, profile_steps=2))["cpt-bf16-s0"]
    assert fingerprint(plain) == fingerprint(profiled)
    # ... while a field that changes the statistics does not.
    assert fingerprint(plain) != fingerprint(specs(_suite(corpus, warmup_steps=2))["cpt-bf16-s0"])


def test_profiled_steps_are_the_last_warmup_steps_and_never_the_compiling_first():
    assert list(profiled_steps(10, 3, 30)) == [8, 9, 10]
    assert list(profiled_steps(10, 3, 5)) == [3, 4, 5]  # a run shorter than its warm-up: its last steps
    assert list(profiled_steps(10, 3, 2)) == [2]
    assert list(profiled_steps(10, 0, 30)) == []
