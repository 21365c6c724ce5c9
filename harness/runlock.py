"""One process at a time in a run folder (`harness train`) or a suite's runs folder (`harness run`).

A lock is a file, `<folder>/.lock`, holding an flock(2) lock and naming its holder (pid, host,
since, command) for the message a second process gets. Safety rests on the kernel's lock, never
on the file's text: a pid cannot be checked from another node, and pids are reused.

- A process that dies, even by SIGKILL, loses its lock with it, so a stale lock (the file still
  names a dead holder) is simply taken over by the next process, which says so.
- On NFS, Linux turns flock into a whole-file POSIX lock that the server arbitrates across nodes;
  a crashed node's locks go when its lease ends (NFSv4: about 90 s). Lustre needs `-o flock`
  (with `localflock` locks are node-local). A file system that refuses locks is an error with the
  fix, unless HARNESS_LOCKS=off says to run without them.
- Under torchrun every rank locks its own file (`.lock` for rank 0, `.lock.rank<R>` for the
  others), so a second job sharing a folder with a running one is refused on every rank that
  would write what the running job writes; no rank needs another to get there first.
- The file is never deleted (deleting it lets a waiter and a newcomer lock two different inodes);
  after locking, the holder checks that the path still names the inode it locked.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import InvalidInput

DISABLE_ENV = "HARNESS_LOCKS"  # "off": run without locks on a file system that has none
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class FolderInUse(InvalidInput):
    """Another live process holds the folder's lock: exit 2, naming it."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str
    command: str

    @classmethod
    def here(cls, command: str) -> Holder:
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(os.getpid(), socket.gethostname(), since, command)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data["since"]), str(data["command"]))
        except (ValueError, KeyError, TypeError):
            return None  # empty (released, or the holder is still writing it) or not ours

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, since {self.since}: `{self.command}`"


def lock_name(rank: int = 0) -> str:
    return ".lock" if rank == 0 else f".lock.rank{rank}"


def env_rank() -> int:
    """This process's global rank under torchrun (RANK), 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@contextmanager
def folder_lock(folder: Path, *, what: str, command: str, rank: int = 0, say=None) -> Iterator[Holder | None]:
    """Hold `folder`'s lock for the block; FolderInUse naming the holder when another process has it.

    what: the folder as the user knows it ("run folder", "suite runs folder"), for the message;
    command: what this process is doing ("harness train cpt-bf16-s0"), for another's message.
    Yields the holder a stale lock named (it ended without releasing: killed), or None; `say`
    (default: print to stderr) reports such a takeover.
    """
    if os.environ.get(DISABLE_ENV, "").lower() == "off":
        yield None
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock_name(rank)
    fd, stale = _acquire(path, folder, what, Holder.here(command))
    try:
        if stale is not None:
            (say or _stderr)(
                f"note: {path}: taking over the lock of {stale.describe()}, which ended without releasing it"
            )
        yield stale
    finally:
        try:
            os.ftruncate(fd, 0)  # released: the next holder finds no one named
        finally:
            os.close(fd)  # closing releases the flock


def _acquire(path: Path, folder: Path, what: str, me: Holder) -> tuple[int, Holder | None]:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(_in_use(path, folder, what)) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in _UNSUPPORTED:
                raise InvalidInput(
                    f"{path}: this file system does not support file locks ({os.strerror(exc.errno)}), which keep "
                    f"two runs out of one {what}; put the runs folder on one that does (local disk, NFS with "
                    f"locking, Lustre mounted with -o flock) via --runs-dir, or set {DISABLE_ENV}=off and make sure "
                    "yourself that one process at a time uses it"
                ) from None
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was deleted or replaced while we locked it: lock the one there now
    stale = Holder.parse(os.pread(fd, 4096, 0).decode("utf-8", errors="replace"))
    record = json.dumps(asdict(me)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    os.fsync(fd)
    return fd, stale


def _in_use(path: Path, folder: Path, what: str) -> str:
    try:
        holder = Holder.parse(path.read_text(errors="replace"))
    except OSError:
        holder = None
    who = holder.describe() if holder else "a process that has not written its name yet"
    message = f"{folder}: this {what} is in use by another harness process ({who}); "
    if holder and holder.host == socket.gethostname() and not _alive(holder.pid):
        message += (
            f"pid {holder.pid} has exited, but a process it started still holds the lock (`fuser -v {path}` "
            "shows which): stop it, then re-run this command"
        )
    else:
        where = f" on {holder.host}" if holder else ""
        pid = holder.pid if holder else "<pid>"
        message += (
            f"wait for it to finish, or stop it (`kill {pid}`{where}) and re-run this command (a stopped run "
            "resumes; its lock is taken over), or use another --runs-dir"
        )
    return message


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
