"""Helpers for fault and bad-input tests: tiny suite files and a child `harness` process that can be
paused at an exact point and killed (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.eval.procs import live_processes

HOOKS = Path(__file__).parent / "hooks"
STEPS, CHECKPOINT_EVERY = 10, 3  # checkpoints at steps 3, 6 and 9

SUITE = """\
name = "rel"
seeds = [0]

[model]
preset = "tiny"
tokenizer = "builtin:tiny-bpe"

[arms]
bf16 = "bf16"
fp8 = "emulated:block"

[topology]
device = "cpu"

[stages.cpt]
kind = "cpt"
data = {{ path = "{data}" }}
seq_len = 32
global_batch_size = 4
micro_batch_size = 2
steps = {steps}
checkpoint_every = {checkpoint_every}
optim = {{ lr = 3e-3, min_lr = 3e-4 }}
schedule = {{ kind = "wsd", warmup_steps = 2, decay_fraction = 0.25 }}
evaluate = false

[telemetry]
warmup_steps = 1

[gates]
max_loss_rel_error = 0.5
"""


def write_suite(folder: Path, data: Path | str, *, steps: int = STEPS, extra: str = "", replace=()) -> Path:
    """suite.toml in `folder`: two arms (bf16, emulated:block) of a tiny CPT stage; `replace` edits lines."""
    text = SUITE.format(data=data, steps=steps, checkpoint_every=CHECKPOINT_EVERY) + extra
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "suite.toml"
    path.write_text(text)
    return path


def write_corpus(path: Path, docs: int = 60) -> Path:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    lines = [
        json.dumps({"text": f"doc {i}: " + " ".join(words[(i * 7 + j * 3) % 12] for j in range(20 + i % 15))})
        for i in range(docs)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class Child:
    """`python -m harness.cli ARGS` in its own session, optionally pausing itself at HARNESS_TEST_PAUSE;
    `env` adds environment variables (e.g. the hooks' HARNESS_TEST_LATE_INTERRUPT)."""

    def __init__(self, args: list[str], log: Path, pause: str | None = None, env: dict[str, str] | None = None):
        path = os.pathsep.join(filter(None, [str(HOOKS), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, **(env or {})}
        env.pop("HARNESS_TEST_PAUSE", None)
        if pause:
            env["HARNESS_TEST_PAUSE"] = pause
        self.log = log
        with log.open("w") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_paused(self) -> None:
        """Block until the child has stopped itself at the pause point (fails if it exited instead)."""
        _, status = os.waitpid(self.proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            pytest.fail(
                f"child exited ({self.proc.returncode}) before its pause point:\n{self.log.read_text()[-3000:]}"
            )

    def wait_session_paused(self, timeout_s: float = 120.0) -> None:
        """Block until some process of the child's session (e.g. the `harness train` that `harness run`
        starts per arm) has stopped itself at the pause point; polls /proc, fails on exit or timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"child exited ({self.proc.returncode}) before its pause point:\n{self.log.read_text()[-3000:]}"
                )
            if any(state == "T" for state in session_states(self.proc.pid)):
                return
            time.sleep(0.05)  # polling a condition, not waiting for time to pass
        pytest.fail(f"no process of the session paused within {timeout_s} s")

    def kill(self) -> int:
        """SIGKILL the child (works on a stopped process) and return its exit code (-9)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout=60)


def session_states(sid: int) -> list[str]:
    """The one-letter states (R, S, T, ...) of the live processes in session `sid`."""
    return [fields[0] for _, fields in live_processes() if int(fields[3]) == sid]


def wait_session_gone(sid: int, timeout_s: float = 60.0) -> None:
    """Block until no live process of session `sid` is left (after a SIGKILL to its group: the
    processes die asynchronously, and a lock is free only once its holder is gone); polls /proc."""
    deadline = time.monotonic() + timeout_s
    while session_processes(sid):
        if time.monotonic() > deadline:
            pytest.fail(f"processes of session {sid} still alive after {timeout_s} s: {session_processes(sid)}")
        time.sleep(0.05)  # polling a condition, not waiting for time to pass


def session_processes(sid: int) -> list[str]:
    """Live (non-zombie) processes whose session id is `sid`: what a child left behind."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(text.split(")", 1)[0] + ")")
    return found


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant, by parent pid (torchrun's ranks sit in sessions of their own,
    so a session misses them; Slurm signals the whole tree of a job step)."""
    parents = {pid: int(fields[1]) for pid, fields in live_processes()}
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return sorted(pid for pid in tree if pid in parents)


def wait_tree_paused(child: Child, timeout_s: float = 180.0) -> int:
    """Block until some process under the child has stopped itself at the pause point; its pid."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            pytest.fail(
                f"child exited ({child.proc.returncode}) before its pause point:\n{child.log.read_text()[-3000:]}"
            )
        tree = set(process_tree(child.proc.pid))
        stopped = [pid for pid, fields in live_processes() if pid in tree and fields[0] == "T"]
        if stopped:
            return stopped[0]
        time.sleep(0.05)  # polling a condition, not waiting for time to pass
    pytest.fail(f"no process under the child paused within {timeout_s} s")


def alive(pid: int) -> bool:
    """Whether `pid` is a live, non-zombie process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_leftovers(pids: list[int]) -> None:
    """SIGKILL whichever of `pids` still live: a failed test must not leave ranks (stopped at a pause
    point, or training on) behind for the tests after it."""
    for pid in filter(alive, pids):
        os.kill(pid, signal.SIGKILL)
