"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during `harness run` or `harness
launch`, or SIGTERM: the command exits 130 with one line, the interrupted run's manifest says so (also
when the signal lands inside a checkpoint write), and no process of its session, or of torchrun's
ranks, is left behind. (Ctrl-C with a vLLM server up is tests/eval/test_vllm_server.py.)"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from relkit import Child, alive, kill_leftovers, process_tree, session_processes, wait_tree_paused, write_suite
from torch.distributed.checkpoint.api import CheckpointException

from harness.errors import Terminated
from harness.eval.procs import group_alive
from harness.launch import run_torchrun
from harness.signals import INTERRUPT_FLAG
from harness.store import RunDir
from harness.train import checkpoint

FAKE_VLLM = [
    sys.executable,
    str(Path(__file__).parents[1] / "fixtures" / "eval" / "fake_vllm.py"),
]  # a fake `vllm serve`


def test_ctrl_c_during_harness_run_marks_the_run_interrupted_and_leaves_no_process(tmp_path, corpus):
    suite = write_suite(tmp_path, corpus, steps=400)  # far more steps than the test lets it run
    argv = ["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report"),
            "--skip-eval", "--quiet"]  # fmt: skip
    child = Child(argv, tmp_path / "child.log", pause="metrics:2")
    child.wait_session_paused()  # `harness run` trains each arm in a `harness train` child process
    assert session_processes(child.proc.pid)  # the check sees the live session
    os.killpg(child.proc.pid, signal.SIGINT)  # pending while stopped, delivered on SIGCONT
    os.killpg(child.proc.pid, signal.SIGCONT)
    assert child.proc.wait(timeout=120) == 130
    log = child.log.read_text()
    assert "harness run: interrupted" in log and "Traceback" not in log, log[-2000:]
    manifest = RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0").read_manifest()
    assert manifest["status"] == "interrupted" and manifest["reason"] == "interrupted by the user"
    assert manifest["ended_at"]
    assert not (tmp_path / "runs" / "rel" / "cpt-fp8-s0").exists()  # the next arm never started
    assert session_processes(child.proc.pid) == []


def test_ctrl_c_during_harness_launch_stops_torchruns_ranks_and_leaves_none_training(tmp_path, corpus):
    suite = write_suite(tmp_path, corpus, steps=400)
    argv = ["launch", str(suite), "--nproc-per-node", "2", "--runs-dir", str(tmp_path / "runs"),
            "--report-dir", str(tmp_path / "report"), "--skip-eval"]  # fmt: skip
    child = Child(argv, tmp_path / "child.log", pause="metrics:2")
    rank0 = wait_tree_paused(child)  # the ranks run in sessions of their own, under torchrun's agent
    tree = process_tree(child.proc.pid)
    assert len(tree) == 4, tree  # launch, the agent and two ranks
    try:
        os.killpg(child.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: launch's process group
        os.kill(rank0, signal.SIGCONT)
        assert child.proc.wait(timeout=180) == 130
        log = child.log.read_text()
        assert "harness launch: interrupted" in log, log[-3000:]
        manifest = RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0").read_manifest()
        assert manifest["status"] == "interrupted" and manifest["ended_at"]
        assert [pid for pid in tree if alive(pid)] == []  # no rank left training
    finally:
        kill_leftovers(tree)


def test_ctrl_c_during_harness_launch_is_recorded_as_interrupted_when_rank_0_sees_its_peer_leave_first(
    tmp_path, corpus
):
    # The ordering that made the test above flaky under load: the peer rank handles its SIGINT and
    # leaves, rank 0's next collective fails ("Connection closed by peer"), and rank 0's own SIGINT
    # comes only once it holds signals to record that failure. The hooks keep rank 0's signals
    # blocked (pending, then dropped), so the order is forced, not left to the scheduler. No checkpoint
    # comes near: inside one, DCP would hand the peer's interrupt to rank 0 as an interrupt.
    suite = write_suite(tmp_path, corpus, steps=400, replace=[("checkpoint_every = 3", "checkpoint_every = 100")])
    argv = ["launch", str(suite), "--nproc-per-node", "2", "--runs-dir", str(tmp_path / "runs"),
            "--report-dir", str(tmp_path / "report"), "--skip-eval"]  # fmt: skip
    child = Child(argv, tmp_path / "child.log", pause="metrics:2", env={"HARNESS_TEST_LATE_INTERRUPT": "0"})
    rank0 = wait_tree_paused(child)
    tree = process_tree(child.proc.pid)
    try:
        os.killpg(child.proc.pid, signal.SIGINT)
        os.kill(rank0, signal.SIGCONT)
        assert child.proc.wait(timeout=180) == 130
        log = child.log.read_text()
        assert "harness launch: interrupted" in log, log[-3000:]
        assert "[rank0]: Traceback" in log, log[-3000:]  # rank 0 ended on its failed collective, not its signal
        run_dir = RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0")
        manifest = run_dir.read_manifest()
        assert manifest["status"] == "interrupted", (manifest, log[-3000:])
        assert manifest["reason"] == "interrupted by the user"
        assert not (run_dir.path / INTERRUPT_FLAG).exists()  # gone with the agent: a later run's failure is a failure
        assert [pid for pid in tree if alive(pid)] == []
    finally:
        kill_leftovers(tree)


FAKE_AGENT = """
import os, pathlib, signal, sys
flag, seen = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
seen.write_text(f"at start {flag.exists()}")

def stop(signum, frame):
    seen.write_text(f"{seen.read_text()}, at the signal {flag.exists()}")
    sys.exit(130)

signal.signal(signal.SIGINT, stop)
os.kill(os.getppid(), signal.SIGINT)  # the Ctrl-C that reaches harness launch
signal.pause()
"""


def test_harness_launch_flags_the_interrupt_in_the_run_folder_before_torchruns_agent_receives_it(tmp_path):
    flag, seen = tmp_path / INTERRUPT_FLAG, tmp_path / "seen.txt"
    flag.touch()  # left behind by a launch that was killed
    with pytest.raises(KeyboardInterrupt):
        run_torchrun([sys.executable, "-c", FAKE_AGENT, str(flag), str(seen)], tmp_path)
    assert seen.read_text() == "at start False, at the signal True"
    assert not flag.exists()


def test_sigterm_to_harness_train_unwinds_like_ctrl_c_and_exits_143(tmp_path, corpus):
    suite = write_suite(tmp_path, corpus, steps=400)
    argv = ["train", str(suite), "--run", "cpt-bf16-s0", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    child = Child(argv, tmp_path / "child.log", pause="metrics:2")
    child.wait_paused()
    os.kill(child.proc.pid, signal.SIGTERM)  # what Slurm sends at the time limit, torchrun to stop workers
    os.kill(child.proc.pid, signal.SIGCONT)
    assert child.proc.wait(timeout=120) == 128 + signal.SIGTERM
    log = child.log.read_text()
    assert "harness train: terminated (SIGTERM)" in log and "Traceback" not in log, log[-2000:]
    assert RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0").read_manifest()["status"] == "interrupted"


ONCE_SCRIPT = """
import os, signal
from harness.errors import Terminated
from harness.signals import interrupts_once

for first in (signal.SIGINT, signal.SIGTERM):
    try:
        with interrupts_once():
            try:
                os.kill(os.getpid(), first)  # the handler runs at the next bytecode
                print("not interrupted")
            except KeyboardInterrupt as exc:
                # The second signal of a relayed Ctrl-C, while the first unwinds: ignored.
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
                print("unwound", type(exc).__name__, flush=True)
                raise
    except KeyboardInterrupt:
        pass
print("restored", signal.getsignal(signal.SIGINT) is signal.default_int_handler,
      signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
"""


def test_after_the_first_interrupt_a_second_is_ignored_until_the_run_has_ended():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", ONCE_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["unwound KeyboardInterrupt", "unwound Terminated", "restored True True"]


def test_a_second_ctrl_c_while_harness_eval_stops_its_vllm_server_does_not_leave_the_server_running(
    tmp_path, reference
):
    # A terminal's Ctrl-C reaches a `harness eval` twice when `harness run` relays it too (and GNU
    # timeout sends SIGTERM to the child and to its group). Landing inside the server's stop, the
    # second one used to abort it: the server, in a session of its own, kept running (and its GPUs).
    out = tmp_path / "eval"
    argv = ["eval", str(reference.path), "--bench", "arith", "--backend", "vllm", "--limit", "4", "--samples", "2",
            "--max-tokens", "8", "--out", str(out), "--quiet"]  # fmt: skip
    os.environ["HARNESS_VLLM_COMMAND"] = shlex.join([*FAKE_VLLM, "--mode", "hang-after=1"])
    try:
        child = Child(argv, tmp_path / "child.log", pause="server-stop:1")
    finally:
        del os.environ["HARNESS_VLLM_COMMAND"]
    log = out / "vllm.log"
    _poll(lambda: log.is_file() and "holding seed" in log.read_text(), what="a request held by the server")
    server = int(re.search(r"fake vllm: serving .* pid=(\d+)", log.read_text()).group(1))
    os.kill(child.proc.pid, signal.SIGINT)  # the first Ctrl-C: generation stops, the server's stop begins
    child.wait_paused()  # inside that stop
    os.kill(child.proc.pid, signal.SIGINT)  # the second, pending until the child resumes
    os.kill(child.proc.pid, signal.SIGCONT)
    try:
        assert child.proc.wait(timeout=120) == 130
        assert "harness eval: interrupted" in child.log.read_text()
        _poll(lambda: not group_alive(server), what=f"the fake server's process group {server} to be gone")
    finally:
        if group_alive(server):  # a failed check must not leave the server behind for the next tests
            os.killpg(server, signal.SIGKILL)


def _poll(condition, *, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.05)  # polling a condition, not waiting for time to pass


def test_an_interrupt_inside_a_checkpoint_write_or_read_stays_an_interrupt(tmp_path, monkeypatch):
    """DCP wraps an exception of any rank in a CheckpointException; a Ctrl-C or SIGTERM must not come
    out of it as a failed run, nor as unreadable shards whose message says to delete the checkpoint."""
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    saved = checkpoint.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {"epoch": 0})

    def interrupted(*args, **kwargs):  # as DCP reports another rank's SIGTERM
        raise CheckpointException("save failed", {1: (Terminated("SIGTERM"), None)})

    monkeypatch.setattr(checkpoint.dcp, "save", interrupted)
    with pytest.raises(Terminated):
        checkpoint.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, {"epoch": 0})
    monkeypatch.setattr(checkpoint.dcp, "load", interrupted)
    with pytest.raises(Terminated):
        checkpoint.load_checkpoint(saved, model, optimizer, scheduler)
