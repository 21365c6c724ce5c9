"""SIGKILL of a real `python -m harness.cli train` child, then the same command again: it resumes from
the latest complete checkpoint and the per-step losses equal an uninterrupted run's exactly."""

from __future__ import annotations

import random

from relkit import CHECKPOINT_EVERY, STEPS, Child, write_suite

from harness.cli import main
from harness.store import RunDir

KILL_SEED = 9  # the kill step is random but reproducible


def _losses(run: RunDir) -> list[float]:
    return [r["loss"] for r in run.read_metrics()]


def test_sigkill_after_a_checkpoint_then_the_same_command_resumes_to_identical_losses(tmp_path, corpus, reference):
    kill_at = random.Random(KILL_SEED).randint(CHECKPOINT_EVERY + 1, STEPS - 1)
    last_checkpoint = kill_at // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    suite = write_suite(tmp_path, corpus)
    argv = ["train", str(suite), "--run", "cpt-fp8-s0", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    run = RunDir(tmp_path / "runs" / "rel" / "cpt-fp8-s0")

    child = Child(argv, tmp_path / "child.log", pause=f"metrics:{kill_at}")
    child.wait_paused()
    assert child.kill() == -9
    assert run.read_manifest()["status"] == "running"  # no chance to write anything else
    assert max(r["step"] for r in run.read_metrics()) == kill_at
    assert (run.checkpoints / f"step-{last_checkpoint:06d}").is_dir() and not (run.checkpoints / "final").exists()

    assert main(argv) == 0
    assert [r["step"] for r in run.read_metrics()] == list(range(1, STEPS + 1))
    assert _losses(run) == _losses(reference)
    manifest = run.read_manifest()
    assert manifest["status"] == "completed" and manifest["segment_starts"] == [0, last_checkpoint]


def test_sigkill_during_a_checkpoint_write_resumes_from_the_previous_complete_one(tmp_path, corpus, reference):
    suite = write_suite(tmp_path, corpus)
    argv = ["train", str(suite), "--run", "cpt-fp8-s0", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    run = RunDir(tmp_path / "runs" / "rel" / "cpt-fp8-s0")
    torn = 2 * CHECKPOINT_EVERY

    child = Child(argv, tmp_path / "child.log", pause=f"checkpoint:{torn}")
    child.wait_paused()  # stopped with step-000006.tmp/ written but not yet renamed
    assert child.kill() == -9
    tmp_folder = run.checkpoints / f"step-{torn:06d}.tmp"
    for part in (p for p in tmp_folder.rglob("*") if p.is_file()):  # as if killed mid-write
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [f"step-{CHECKPOINT_EVERY:06d}", tmp_folder.name]

    assert main(argv) == 0
    assert run.read_manifest()["segment_starts"] == [0, CHECKPOINT_EVERY]  # not the torn step-6
    assert _losses(run) == _losses(reference)
