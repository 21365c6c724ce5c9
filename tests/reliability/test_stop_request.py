"""SIGUSR1 (Slurm's `--signal=USR1@120` before a time limit or preemption): the run finishes its step,
writes a checkpoint there, records why it stopped and exits 138; the same command resumes it to the
losses of an uninterrupted run. `harness run` hands the signal on to the arm it is training, and
`harness launch` to torchrun's ranks (two CPU ranks over gloo here), whose agent must survive it."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from relkit import STEPS, Child, kill_leftovers, process_tree, wait_tree_paused, write_suite

from harness.cli import main
from harness.eval.procs import live_processes
from harness.store import RunDir

STOP_AT = 4  # not a checkpoint_every step (3): the checkpoint there exists only because of the request


def _losses(run: RunDir) -> list[float]:
    return [r["loss"] for r in run.read_metrics()]


def _stopped_there(run: RunDir, step: int, log: str) -> None:
    reason = f"stopped by SIGUSR1 after step {step} of {STEPS}, its checkpoint written; run the same command again"
    assert reason in log and "Traceback" not in log, log[-2000:]
    manifest = run.read_manifest()
    assert manifest["status"] == "interrupted" and manifest["reason"].startswith(reason)
    assert max(r["step"] for r in run.read_metrics()) == step
    assert (run.checkpoints / f"step-{step:06d}").is_dir() and not (run.checkpoints / "final").exists()


def test_sigusr1_to_harness_train_checkpoints_after_the_step_and_the_same_command_resumes(tmp_path, corpus, reference):
    suite = write_suite(tmp_path, corpus)
    argv = ["train", str(suite), "--run", "cpt-fp8-s0", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    run = RunDir(tmp_path / "runs" / "rel" / "cpt-fp8-s0")
    # A step's metrics line is written as the next step begins: paused there, the signal lands in step STOP_AT.
    child = Child(argv, tmp_path / "child.log", pause=f"metrics:{STOP_AT - 1}")
    child.wait_paused()
    os.kill(child.proc.pid, signal.SIGUSR1)  # pending while stopped, handled when it resumes
    os.kill(child.proc.pid, signal.SIGCONT)
    assert child.proc.wait(timeout=120) == 138
    _stopped_there(run, STOP_AT, child.log.read_text())

    assert main(argv) == 0
    assert [r["step"] for r in run.read_metrics()] == list(range(1, STEPS + 1))
    assert _losses(run) == _losses(reference)
    manifest = run.read_manifest()
    assert manifest["status"] == "completed" and manifest["segment_starts"] == [0, STOP_AT]


def test_sigusr1_to_harness_run_stops_the_arm_in_training_and_a_rerun_finishes_the_suite(tmp_path, corpus):
    suite = write_suite(tmp_path, corpus)
    argv = ["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report"),
            "--skip-eval", "--quiet"]  # fmt: skip
    child = Child(argv, tmp_path / "child.log", pause="metrics:1")
    child.wait_session_paused()  # the `harness train` child of the first arm, as step 2 begins
    trainer = _stopped_process(child.proc.pid)
    os.kill(child.proc.pid, signal.SIGUSR1)  # to `harness run` only: it must hand the signal on
    _wait_pending(trainer, signal.SIGUSR1)
    os.kill(trainer, signal.SIGCONT)
    _first_arm_stopped_after_step_2(child, tmp_path, "run")

    _rerun_finishes(argv, tmp_path)


def _first_arm_stopped_after_step_2(child: Child, tmp_path, command: str) -> None:
    """The command exited 138 saying so, the first arm stopped there with its checkpoint, the next never began."""
    assert child.proc.wait(timeout=180) == 138
    log = child.log.read_text()
    assert f"harness {command}: cpt-bf16-s0: stopped by SIGUSR1 after step 2" in log, log[-3000:]
    _stopped_there(RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0"), 2, log)
    assert not (tmp_path / "runs" / "rel" / "cpt-fp8-s0").exists()


def _rerun_finishes(argv: list[str], tmp_path) -> None:
    """The same command again finishes the suite: both arms completed, every step's metrics there."""
    assert main(argv) == 0
    for arm in ("bf16", "fp8"):
        run = RunDir(tmp_path / "runs" / "rel" / f"cpt-{arm}-s0")
        assert run.read_manifest()["status"] == "completed"
        assert [r["step"] for r in run.read_metrics()] == list(range(1, STEPS + 1))


def _launch(tmp_path, corpus) -> list[str]:
    suite = write_suite(tmp_path, corpus)
    return ["launch", str(suite), "--nproc-per-node", "2", "--runs-dir", str(tmp_path / "runs"),
            "--report-dir", str(tmp_path / "report"), "--skip-eval"]  # fmt: skip


def _stop_during_step_2(child: Child, targets) -> list[int]:
    """Rank 0 pauses as step 2 begins (only it writes metrics); SIGUSR1 goes to `targets(tree)`, and
    once it is pending at rank 0 (sent there or handed on) rank 0 goes on: both ranks hear of it in step 2.
    Returns the tree (launch, agent, ranks), for the test to kill what is left of it if it fails."""
    rank0 = wait_tree_paused(child)
    tree = process_tree(child.proc.pid)
    for pid in targets(tree):
        os.kill(pid, signal.SIGUSR1)
    _wait_pending(rank0, signal.SIGUSR1)
    os.kill(rank0, signal.SIGCONT)
    return tree


def test_sigusr1_to_every_process_of_harness_launch_as_slurm_sends_it_stops_both_ranks_and_a_rerun_finishes(
    tmp_path, corpus
):
    argv = _launch(tmp_path, corpus)
    child = Child(argv, tmp_path / "child.log", pause="metrics:1")
    tree = _stop_during_step_2(child, lambda tree: tree)  # Slurm's --signal: launch, torchrun's agent, both ranks
    try:
        _first_arm_stopped_after_step_2(child, tmp_path, "launch")
    finally:
        kill_leftovers(tree)

    _rerun_finishes(argv, tmp_path)


def test_sigusr1_to_harness_launch_alone_is_handed_to_the_ranks(tmp_path, corpus):
    child = Child(_launch(tmp_path, corpus), tmp_path / "child.log", pause="metrics:1")
    tree = _stop_during_step_2(child, lambda tree: [child.proc.pid])  # `kill -USR1` of launch (a batch script)
    try:
        _first_arm_stopped_after_step_2(child, tmp_path, "launch")
    finally:
        kill_leftovers(tree)


def _stopped_process(sid: int) -> int:
    """The pid of the process of session `sid` that stopped itself at the pause point."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] == "T":
            return int(stat.parent.name)
    raise AssertionError(f"no stopped process in session {sid}")


def _wait_pending(pid: int, sig: signal.Signals, timeout_s: float = 60.0) -> None:
    """Block until `sig` is pending for process `pid` (it is stopped, so it stays pending); polls /proc."""
    bit = 1 << (sig - 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        pending = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines() if "Pnd:" in line}
        if any(mask & bit for mask in pending.values()):
            return
        time.sleep(0.05)  # polling a condition, not waiting for time to pass
    raise AssertionError(f"{sig.name} never reached process {pid}")


def test_sigusr1_to_a_two_node_launch_stops_both_nodes_after_the_same_step(tmp_path, corpus):
    """Two `harness launch` agents meeting at one endpoint (two "nodes" on this machine, one rank each):
    Slurm signals every process of both; both nodes exit 138 and the run stopped after step 2."""
    suite = write_suite(tmp_path, corpus)
    port = _free_port()
    children = [
        Child(
            [
                "launch",
                str(suite),
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--rdzv-endpoint",
                f"localhost:{port}",
                "--runs-dir",
                str(tmp_path / "runs"),
                "--report-dir",
                str(tmp_path / "report"),
                "--skip-eval",
            ],
            tmp_path / f"node{rank}.log",
            pause="metrics:1",
        )  # fmt: skip
        for rank in (0, 1)
    ]
    trees: list[int] = []
    try:
        writer = _paused_under(children)  # the rank that writes metrics, on whichever node c10d made rank 0
        trees = [pid for child in children for pid in process_tree(child.proc.pid)]
        for pid in trees:
            os.kill(pid, signal.SIGUSR1)
        _wait_pending(writer, signal.SIGUSR1)
        os.kill(writer, signal.SIGCONT)
        assert [child.proc.wait(timeout=180) for child in children] == [138, 138]
    finally:
        kill_leftovers(trees + [child.proc.pid for child in children])
    logs = "".join(child.log.read_text() for child in children)
    _stopped_there(RunDir(tmp_path / "runs" / "rel" / "cpt-bf16-s0"), 2, logs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _paused_under(children: list[Child], timeout_s: float = 180.0) -> int:
    """The pid of the process under any of the children that stopped itself at the pause point."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            assert child.proc.poll() is None, child.log.read_text()[-3000:]
            tree = set(process_tree(child.proc.pid))
            stopped = [pid for pid, fields in live_processes() if pid in tree and fields[0] == "T"]
            if stopped:
                return stopped[0]
        time.sleep(0.05)  # polling a condition, not waiting for time to pass
    raise AssertionError(f"no process paused within {timeout_s} s")
