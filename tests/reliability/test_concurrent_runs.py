"""Two harness processes on one run folder (or one suite's runs folder) at once: the second refuses,
exit 2, naming the holder (pid, host, since, command) and the fix, and writes nothing; once the
first is killed with SIGKILL its stale lock is taken over and the run resumes to whole metrics.

The first process is real (`python -m harness.cli` in its own session) and stopped by the test hook
at an exact step (relkit.Child), so it holds its lock for as long as the test needs, without sleeps."""

from __future__ import annotations

import os
import signal
import socket

from relkit import STEPS, Child, wait_session_gone, write_suite

from harness.cli import main
from harness.store import RunDir


def _steps(run: RunDir) -> list[int]:
    return [r["step"] for r in run.read_metrics()]


def test_a_second_harness_train_of_a_running_run_is_refused_then_takes_over_once_the_first_is_killed(
    tmp_path, corpus, capsys
):
    suite = write_suite(tmp_path, corpus)
    argv = ["train", str(suite), "--run-id", "cpt-bf16-s0", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    run = RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0")
    first = Child(argv, tmp_path / "first.log", pause="metrics:2")
    first.wait_paused()  # holds the run folder's lock, stopped after writing step 2

    assert main(argv) == 2
    err = capsys.readouterr().err
    pid, host = first.proc.pid, socket.gethostname()
    assert err.count("harness train: ") == 1 and "Traceback" not in err, err
    assert f"{run.path}: this run folder is in use by another harness process (pid {pid} on host {host}, since " in err
    assert "`harness train cpt-bf16-s0`" in err and f"`kill {pid}` on {host}" in err, err
    assert _steps(run) == [1, 2]  # the second process wrote nothing

    assert first.kill() == -9  # SIGKILL: no chance to release anything
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock of pid {pid} on host {host}" in err and "ended without releasing it" in err, err
    assert _steps(run) == list(range(1, STEPS + 1))
    assert run.read_manifest()["status"] == "completed"


def test_a_second_harness_run_of_a_suite_is_refused_while_the_first_trains(tmp_path, corpus, capsys):
    suite = write_suite(tmp_path, corpus)
    argv = ["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report"),
            "--quiet"]  # fmt: skip
    bf16 = RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0")
    first = Child(argv, tmp_path / "first.log", pause="metrics:2")
    first.wait_session_paused()  # its `harness train` child stopped after step 2 of the bf16 arm

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("harness run: ") == 1 and "Traceback" not in err, err
    assert f"{tmp_path / 'runs' / 'rel'}: this suite runs folder is in use by another harness process " in err
    assert f"(pid {first.proc.pid} on host {socket.gethostname()}, since " in err and f"`harness run {suite}`" in err
    assert _steps(bf16) == [1, 2] and not bf16.path.with_name("cpt-fp8-s0").exists()

    os.killpg(first.proc.pid, signal.SIGKILL)  # the whole session: `harness run` and its `harness train`
    first.proc.wait(timeout=60)
    wait_session_gone(first.proc.pid)
    assert main(argv) == 0  # both stale locks taken over; bf16 restarts (no checkpoint yet), fp8 trains
    err = capsys.readouterr().err
    assert f"taking over the lock of pid {first.proc.pid}" in err, err
    for run_id in ("cpt-bf16-s0", "cpt-fp8-s0"):
        assert _steps(RunDir(tmp_path / "runs" / "rel" / run_id)) == list(range(1, STEPS + 1))
