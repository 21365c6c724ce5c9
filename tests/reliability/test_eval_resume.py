"""`harness eval` killed midway (SIGKILL of the real CLI process) and run again generates only the
samples that were not finished; finished ones are reused as they were. The runner-level version
of this (a KeyboardInterrupt inside evaluate_checkpoint) is tests/eval/test_runner.py."""

from __future__ import annotations

import json
import os
import signal

from relkit import Child

from harness.cli import main
from harness.eval import cache

LIMIT, SAMPLES, KILL_AFTER = 4, 2, 3  # 8 samples; the kill lands after the 3rd


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_eval_resumes_without_regenerating_finished_samples(tmp_path, reference, monkeypatch):
    out = tmp_path / "eval"
    argv = ["eval", str(reference.path), "--bench", "arith", "--backend", "transformers", "--limit", str(LIMIT),
            "--samples", str(SAMPLES), "--max-tokens", "4", "--out", str(out), "--quiet"]  # fmt: skip
    child = Child(argv, tmp_path / "child.log", pause=f"eval:{KILL_AFTER}")
    child.wait_paused()
    assert child.kill() == -9
    generations = out / "arith" / "generations.jsonl"
    before = _lines(generations)
    assert len(before) == KILL_AFTER and not (out / "arith" / "samples.parquet").exists()

    appended = []
    original = cache.GenerationCache.append
    monkeypatch.setattr(
        cache.GenerationCache, "append", lambda self, *a, **k: (appended.append(a[:2]), original(self, *a, **k))[1]
    )
    assert main(argv) == 0
    assert len(appended) == LIMIT * SAMPLES - KILL_AFTER
    assert not {(b["problem_id"], b["sample_index"]) for b in before} & set(appended)
    assert _lines(generations)[:KILL_AFTER] == before  # finished samples kept, not rewritten
    summary = json.loads((out / "arith" / "summary.json").read_text())
    assert summary["n_samples"] == LIMIT * SAMPLES


def test_sigusr1_during_eval_stops_it_with_exit_138_and_the_same_command_finishes(tmp_path, reference):
    """Slurm's --signal=USR1 before the time limit can land while node 0 evaluates: the finished samples
    are kept and the command exits 138 like a stopped training run, so the batch script requeues it."""
    out = tmp_path / "eval"
    argv = ["eval", str(reference.path), "--bench", "arith", "--backend", "transformers", "--limit", str(LIMIT),
            "--samples", str(SAMPLES), "--max-tokens", "4", "--out", str(out), "--quiet"]  # fmt: skip
    child = Child(argv, tmp_path / "child.log", pause=f"eval:{KILL_AFTER}")
    child.wait_paused()
    os.kill(child.proc.pid, signal.SIGUSR1)  # pending while stopped, handled when it goes on
    os.kill(child.proc.pid, signal.SIGCONT)
    assert child.proc.wait(timeout=120) == 138
    log = child.log.read_text()
    assert "harness eval: stopped (SIGUSR1)" in log and "Traceback" not in log, log[-2000:]
    generations = out / "arith" / "generations.jsonl"
    assert len(_lines(generations)) >= KILL_AFTER and not (out / "arith" / "samples.parquet").exists()

    assert main(argv) == 0
    assert json.loads((out / "arith" / "summary.json").read_text())["n_samples"] == LIMIT * SAMPLES
