"""Process helpers shared by the server lifecycle, the sandbox and the engine's child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from harness.errors import Terminated


def pass_interrupt(children: list[subprocess.Popen], exc: KeyboardInterrupt, wait_s: float = 120) -> None:
    """Hand a Ctrl-C (SIGINT) or SIGTERM on to child harness processes and wait for them to record
    how they ended (a run's manifest, an evaluation's finished samples); kill any that outlast wait_s."""
    for child in children:
        child.send_signal(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def live_processes():
    """(pid, stat fields after the command name) of every live, non-zombie process, read from /proc:
    fields[1] is the parent pid, fields[2] the process group, fields[3] the session."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if fields[0] != "Z":
            yield int(entry.name), fields


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process of process group `pgid` still exists."""
    return any(int(fields[2]) == pgid for _, fields in live_processes())


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (torchrun's ranks under its agent)."""
    return [child for child, fields in live_processes() if int(fields[1]) == pid]


def kill_group(pgid: int, sig: int = signal.SIGKILL, wait_s: float = 5.0) -> bool:
    """Signal the whole group and wait until none of it is left; True when it is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait_s
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # the kernel tears processes down asynchronously after SIGKILL
    return True
