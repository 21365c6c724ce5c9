"""A CPU Telemetry run of fake steps: metrics.jsonl, summary.json, manifest, checkpoints, resume."""

from __future__ import annotations

import json

import pytest
import torch
from fakes import SUMMARY_KEYS, make_spec

from harness.store import RunDir
from harness.telemetry import Telemetry

RECORD_KEYS = {
    "step",
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "processed_tokens",
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "peak_alloc_bytes",
    "peak_reserved_bytes",
    "checkpoint",
    "time_s",
}


def _train(tel, steps, *, checkpoint_at=(), tokens=64):
    for step in steps:
        with tel.step(step) as rec:
            torch.randn(64, 64) @ torch.randn(64, 64)
            rec.update(loss=torch.tensor(4.0 / step), lr=1e-3, grad_norm=torch.tensor(0.5), tokens=tokens)
        if step in checkpoint_at:
            tel.mark_checkpoint(step)


def _telemetry(run, spec, total=6):
    return Telemetry(run, spec, device=torch.device("cpu"), flops_per_token=1e6, total_steps=total, quiet=True)


def test_cpu_run_writes_documented_metrics_and_summary(tmp_path, spec):
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec)
    tel.start()
    assert run.read_manifest()["status"] == "running"
    _train(tel, range(1, 7), checkpoint_at={4})
    summary = tel.finish("completed")

    records = run.read_metrics()
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(r.keys() == RECORD_KEYS for r in records)
    assert [r["checkpoint"] for r in records] == [False, False, False, True, False, False]
    assert records[0]["loss"] == 4.0 and records[0]["grad_norm"] == 0.5 and records[0]["tokens"] == 64
    assert all(r["mfu"] is None and r["peak_alloc_bytes"] is None for r in records)  # CPU: no peak, no allocator
    assert all(r["tokens_per_s"] == pytest.approx(64 / r["step_time_s"]) for r in records)
    times = [r["time_s"] for r in records]
    assert times == sorted(times)

    on_disk = json.loads(run.summary.read_text())
    assert on_disk == summary
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["steps"] == 6 and summary["steady_steps"] == 3  # warm-up 1-2 and checkpoint 4 dropped
    assert summary["tokens_total"] == 384
    assert summary["final_loss"] == pytest.approx(4.0 / 6)
    assert summary["device"] == "cpu" and summary["world_size"] == 1
    steady = [r["step_time_s"] for r in records if r["step"] in (3, 5, 6)]
    assert summary["step_time_s"]["median"] == sorted(steady)[1]
    manifest = run.read_manifest()
    assert manifest["status"] == "completed" and manifest["ended_at"] is not None


def test_a_failed_step_block_is_not_recorded_and_the_failure_is_in_the_manifest(tmp_path, spec):
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec)
    tel.start()
    _train(tel, [1, 2])
    with pytest.raises(FloatingPointError), tel.step(3):
        raise FloatingPointError("loss is NaN")
    summary = tel.finish("failed", reason="loss is NaN at step 3")
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    assert summary["status"] == "failed" and summary["reason"] == "loss is NaN at step 3"
    assert run.read_manifest()["reason"] == "loss is NaN at step 3"
    assert tel.finish("completed") is summary  # finishing twice changes nothing


def test_resume_drops_later_steps_continues_the_clock_and_warms_up_again(tmp_path, spec):
    run = RunDir(tmp_path / spec.run_id)
    first = _telemetry(run, spec)
    first.start()
    _train(first, range(1, 6), checkpoint_at={3})
    first.finish("interrupted", reason="killed")
    started_at = run.read_manifest()["started_at"]
    end_of_step_3 = run.read_metrics()[2]["time_s"]

    second = _telemetry(run, spec)
    second.start(start_step=3)  # resumed from the step-3 checkpoint: steps 4-5 are redone
    _train(second, range(4, 7))
    summary = second.finish("completed")

    records = run.read_metrics()
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[3]["time_s"] > end_of_step_3
    manifest = run.read_manifest()
    assert manifest["started_at"] == started_at and manifest["segment_starts"] == [0, 3]
    assert len(manifest["resumed_at"]) == 1
    assert summary["steady_steps"] == 1  # warm-up 1-2, checkpoint 3, re-warm-up 4-5: only 6 is steady


def test_fresh_start_replaces_metrics_of_an_earlier_attempt(tmp_path, spec):
    run = RunDir(tmp_path / spec.run_id)
    for _ in range(2):
        tel = _telemetry(run, spec)
        tel.start()
        _train(tel, [1, 2])
        tel.finish("completed")
    assert [r["step"] for r in run.read_metrics()] == [1, 2]


def test_emulated_recipe_is_labelled_in_manifest_and_summary(tmp_path):
    spec = make_spec(recipe="emulated:block")
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec)
    tel.start()
    _train(tel, [1])
    assert tel.finish("completed")["emulated"] is True
    assert run.read_manifest()["emulated"] is True


def test_tensorboard_events_are_written_when_enabled(tmp_path):
    spec = make_spec(tensorboard=True)
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec)
    tel.start()
    _train(tel, [1, 2])
    tel.finish("completed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == [4.0, 2.0]


def test_finish_without_start_still_writes_manifest_and_summary(tmp_path, spec):
    run = RunDir(tmp_path / spec.run_id)
    summary = _telemetry(run, spec).finish("failed", reason="out of memory while building the model")
    assert run.read_manifest()["status"] == "failed"
    assert summary["steps"] == 0 and summary["tokens_total"] == 0 and summary["final_loss"] is None


def test_token_counts_given_as_tensors_are_recorded_as_integers(tmp_path, spec):
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec)
    tel.start()
    with tel.step(1) as rec:
        rec.update(loss=1.0, tokens=torch.tensor(37))
    tel.finish("completed")
    assert run.read_metrics()[0]["tokens"] == 37
    assert isinstance(run.read_metrics()[0]["tokens"], int)


def test_unknown_status_is_refused(tmp_path, spec):
    tel = _telemetry(RunDir(tmp_path / spec.run_id), spec)
    with pytest.raises(ValueError, match="expected one of"):
        tel.finish("done")
