"""Process-group helpers shared by the server lifecycle and the sandbox."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process of process group `pgid` still exists (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


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
