"""harness.runlock: one process per folder, a stale lock taken over, every torchrun rank on its own file.

Holders are real processes (`python -c ...`) that print "held" once they hold the lock and keep it
until their stdin closes: the test reads that line from a pipe, so nothing waits on time."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import runlock
from harness.errors import InvalidInput
from harness.runlock import FolderInUse, folder_lock

HOLD = """
import os, sys
from pathlib import Path
from harness.runlock import folder_lock
folder, rank, fork = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "fork"
with folder_lock(folder, what="run folder", command="holder", rank=rank):
    if fork and os.fork():  # the parent exits at once; its child keeps the inherited lock
        os._exit(0)
    print("held", flush=True)
    sys.stdin.read()
"""


class Holder:
    """A process holding folder's lock (rank `rank`) until close()."""

    def __init__(self, folder: Path, rank: int = 0, fork: bool = False):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(rank), "fork" if fork else "-"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout.readline() == "held\n"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _take(folder: Path, rank: int = 0, said: list | None = None):
    with folder_lock(
        folder, what="run folder", command="second", rank=rank, say=(said if said is not None else []).append
    ) as stale:
        return stale


def test_a_second_process_is_refused_naming_the_holder_and_gets_it_once_released(tmp_path):
    holder = Holder(tmp_path)
    with pytest.raises(FolderInUse) as refused:
        _take(tmp_path)
    message = str(refused.value)
    assert f"{tmp_path}: this run folder is in use by another harness process (pid {holder.proc.pid} " in message
    assert f"on host {socket.gethostname()}, since 20" in message and "`holder`" in message
    assert f"`kill {holder.proc.pid}` on {socket.gethostname()}" in message
    assert isinstance(refused.value, InvalidInput)  # exit 2
    holder.close()
    assert _take(tmp_path) is None  # released cleanly: no stale holder to report
    assert (tmp_path / ".lock").read_text() == ""  # and the file names no one once released


def test_a_lock_left_by_a_killed_process_is_taken_over_and_said(tmp_path):
    holder = Holder(tmp_path)
    holder.proc.kill()  # SIGKILL: the kernel drops its flock; the file still names it
    holder.proc.wait(timeout=60)
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == holder.proc.pid
    said: list[str] = []
    stale = _take(tmp_path, said=said)
    assert stale.pid == holder.proc.pid and stale.command == "holder"
    assert said == [f"note: {tmp_path / '.lock'}: taking over the lock of {stale.describe()}, which ended without "
                    "releasing it"]  # fmt: skip


def test_a_process_that_inherited_the_lock_keeps_it_after_its_parent_died(tmp_path):
    # e.g. a forked worker outliving a killed `harness train`: it may still write, so the lock holds
    holder = Holder(tmp_path, fork=True)
    recorded = json.loads((tmp_path / ".lock").read_text())["pid"]
    holder.proc.wait(timeout=60)  # the parent that took the lock has exited
    with pytest.raises(FolderInUse, match=rf"pid {recorded} has exited, but a process it started still holds"):
        _take(tmp_path)
    holder.proc.stdin.close()  # the forked child reads the same stdin: at EOF it releases and exits


def test_every_rank_locks_its_own_file(tmp_path):
    holder = Holder(tmp_path, rank=1)  # rank 1 of a running torchrun job
    with pytest.raises(FolderInUse):
        _take(tmp_path, rank=1)  # rank 1 of a second job on the same folder
    assert _take(tmp_path, rank=0) is None and _take(tmp_path, rank=2) is None
    assert (tmp_path / ".lock.rank1").is_file()
    holder.close()


def test_the_rank_comes_from_torchruns_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    assert runlock.env_rank() == 3 and runlock.lock_name(3) == ".lock.rank3"
    monkeypatch.delenv("RANK")
    assert runlock.env_rank() == 0 and runlock.lock_name(0) == ".lock"


def test_a_file_system_without_locks_is_refused_unless_locks_are_turned_off(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    with pytest.raises(InvalidInput, match=r"does not support file locks .*-o flock.*HARNESS_LOCKS=off"):
        _take(tmp_path)
    monkeypatch.setenv("HARNESS_LOCKS", "off")
    assert _take(tmp_path) is None


def test_a_lock_file_deleted_while_being_locked_is_not_trusted(tmp_path, monkeypatch):
    # A holder that locked an inode someone unlinked would share the folder with the next newcomer.
    real_flock, calls = runlock.fcntl.flock, []

    def flock_then_replace(fd, operation):
        real_flock(fd, operation)
        calls.append(fd)
        if len(calls) == 1:
            (tmp_path / ".lock").unlink()  # as `rm -rf` of the folder's contents would
            (tmp_path / ".lock").write_text("")

    monkeypatch.setattr(runlock.fcntl, "flock", flock_then_replace)
    with folder_lock(tmp_path, what="run folder", command="second"):
        assert os.fstat(calls[-1]).st_ino == os.stat(tmp_path / ".lock").st_ino
        assert len(calls) == 2
