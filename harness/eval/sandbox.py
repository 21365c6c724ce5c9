"""Run untrusted programs (LiveCodeBench generations) contained: what they may see, start and use.

harness.eval.containment finds once per process what this machine provides (summary.json records
its `level` as `sandbox`); docs/EVAL.md lists each protection with the test that shows it:

  file system  bubblewrap (`bwrap`, Debian/Ubuntu/RHEL package `bubblewrap`) starts the program in
               a new mount namespace holding read-only binds of /usr (/bin, /lib, ... as on the
               host), /etc/ld.so.cache, the interpreter's prefixes and the site-packages it imports
               from, its own /proc, a minimal /dev and a private size-capped /tmp (its working
               folder). Nothing else of the host's file system exists in there.
  identity     a new user namespace: uid and gid 65534 inside, every capability dropped.
  processes    a seccomp filter (libseccomp, through pyseccomp) refuses fork, vfork, clone without
               CLONE_THREAD and clone3 (so posix_spawn, subprocess and multiprocessing fail too),
               and unshare, setns, mount, ptrace, bpf, io_uring, keyctl and the like. Threads are
               capped by a pids cgroup where one can be made (root), else by RLIMIT_NPROC (which
               binds a non-root user); with neither, threads are refused as well.
  network      a new network namespace: no interface but a loopback that is down.
  resources    RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, no core files; a wall clock
               after which the process group and every task of its cgroup are killed.

Without a working bwrap or any binding cap on processes the containment is *weak*
(`weak:unshare`: network and PID namespaces only, the whole file system visible; or
`weak:rlimits`), and untrusted code is refused unless the caller allows it explicitly
(`harness eval --allow-weak-sandbox`, `eval.allow_weak_sandbox = true`).
"""

from __future__ import annotations

import functools
import itertools
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InvalidInput
from harness.eval.containment import Containment, find, weak_prefix
from harness.eval.procs import kill_group

SANDBOX_UID = 65534  # "nobody" inside the user namespace
RECORD_FD_ENV = "HARNESS_RECORD_FD"  # the descriptor of the pipe a program may write records to


@dataclass(frozen=True)
class Limits:
    """Per-program limits; LiveCodeBench's own harness allows 6 s per test."""

    timeout_s: float = 6.0  # wall clock, whole program
    cpu_s: int = 10
    memory_bytes: int = 2 << 30  # RLIMIT_AS
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE: any one file it writes, its stdout and stderr included
    open_files: int = 256
    tasks: int = 64  # processes + threads (pids cgroup, or RLIMIT_NPROC above what the user already runs)
    tmp_bytes: int = 64 << 20  # its private /tmp
    record_bytes: int = 64 << 20  # what the harness reads from the record pipe before it kills the program


@dataclass(frozen=True)
class RunResult:
    status: str  # "ok", "error" (non-zero exit), "timeout", "flood" (record pipe over its limit), "stopped"
    returncode: int | None
    stdout: str
    stderr: str
    records: list[str] = field(default_factory=list)  # lines the program wrote to its record pipe


# ---------------------------------------------------------------- running one program


def run_program(code: str, stdin: str = "", limits: Limits = Limits(), *, python: str | None = None,
                ro_paths: tuple[str, ...] = (), allow_weak: bool = False, stop=None) -> RunResult:  # fmt: skip
    """Run `code` as a Python program fed `stdin`, contained (see the module docstring); never raises
    for anything the program does.

    The program may write records (lines) to the pipe whose descriptor is in $HARNESS_RECORD_FD;
    `stop(line) -> bool` sees each one as it arrives and ends the program early by returning True
    (status "stopped"). `ro_paths`: more folders it may read (e.g. where a package it imports lives).
    """
    return _run(containment(allow_weak=allow_weak), code, stdin, limits, python or sys.executable, ro_paths, stop)


def containment(*, allow_weak: bool = False) -> Containment:
    """What contains untrusted programs here, probed once per process (harness.eval.containment);
    InvalidInput naming the fix when only a weak sandbox exists and `allow_weak` is not set."""
    return find(_trial, allow_weak=allow_weak)


def _trial(candidate: Containment) -> RunResult:
    return _run(candidate, "pass", "", Limits(timeout_s=30, cpu_s=30), sys.executable, ())


def _run(box: Containment, code: str, stdin: str, limits: Limits, python: str, extra_ro: tuple, stop=None):
    with tempfile.TemporaryDirectory(prefix="harness-sandbox-") as host:
        host = Path(host)
        script, work = host / "main.py", host / "work"  # work: its writable folder (/tmp inside bwrap)
        script.write_text(code)
        work.mkdir()
        if box.bwrap:
            argv = [*_bwrap_argv(box, python, limits, extra_ro, work, script), python, "-I", "/tmp/main.py"]
        else:
            argv = [*weak_prefix(box), python, "-I", str(script)]
        return _supervise(box, argv, work, host, stdin, limits, stop)


def _bwrap_argv(box: Containment, python: str, limits: Limits, extra_ro, work: Path, script: Path) -> list[str]:
    argv = [box.bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev"]  # fmt: skip
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    # /tmp before the interpreter's folders: a venv under /tmp (a CI clone) must stay visible above it.
    if box.tmpfs_size:  # a tmpfs of bounded size: the program cannot fill the host's memory or disk
        argv += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    else:
        argv += ["--bind", str(work), "/tmp"]
    for path in _python_roots(python, tuple(extra_ro)):
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", str(script), "/tmp/main.py"]
    if box.seccomp is not None:
        argv += ["--seccomp", SECCOMP_FD_SLOT]
    # The root is bwrap's own tmpfs, holding the mount points above: read-only too, or a program could
    # fill the host's memory through it.
    return argv + ["--remount-ro", "/", "--chdir", "/tmp", "--"]


SECCOMP_FD_SLOT = "{seccomp_fd}"  # replaced by the descriptor number once the filter file is open


@functools.cache
def _python_roots(python: str, extra: tuple = ()) -> tuple[str, ...]:
    """Folders the interpreter needs, outermost only: its prefixes, site-packages and `extra`."""
    import site

    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra}
    wanted |= {str(Path(os.path.realpath(python)).parent.parent), str(Path(python).parent.parent)}
    wanted |= {p for p in (*site.getsitepackages(), *sys.path) if p.endswith(("site-packages", "dist-packages"))}
    paths = {os.path.realpath(p) for p in wanted if p and os.path.isdir(p)}
    paths |= {os.path.abspath(p) for p in wanted if p and os.path.isdir(p)}  # a symlinked prefix, as named
    roots: list[str] = []
    for path in sorted(paths):
        if path == "/usr" or path.startswith("/usr/") or any(path.startswith(r + "/") for r in roots):
            continue
        roots.append(path)
    return tuple(roots)


_RUN_NUMBER = itertools.count()


def _supervise(box, argv, work: Path, host: Path, stdin: str, limits: Limits, stop) -> RunResult:
    """Start argv in its own process group (and cgroup), feed stdin, read its records, enforce the wall clock."""
    cgroup = _make_cgroup(box, limits)
    (host / "stdin").write_text(stdin)  # a file, not a pipe: a program that never reads cannot block us
    opened: list[int] = []
    proc, status, records, buffer, size = None, None, [], b"", 0
    try:
        seccomp_fd = None
        if box.bwrap and box.seccomp is not None:
            (host / "filter.bpf").write_bytes(box.seccomp)
            seccomp_fd = os.open(host / "filter.bpf", os.O_RDONLY)
            opened.append(seccomp_fd)
            argv = [str(seccomp_fd) if a == SECCOMP_FD_SLOT else a for a in argv]
        read_end, write_end = os.pipe()
        opened += [read_end, write_end]
        inside_tmp = "/tmp" if box.bwrap else str(work)
        env = {"PATH": "/usr/bin:/bin", "HOME": inside_tmp, "TMPDIR": inside_tmp, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", RECORD_FD_ENV: str(write_end), **{n: "1" for n in _ONE_THREAD}}  # fmt: skip
        with (host / "stdin").open("rb") as stdin_fh, (host / "stdout").open("wb") as out, \
                (host / "stderr").open("wb") as err:  # fmt: skip
            proc = subprocess.Popen(
                argv, cwd=work, env=env, stdin=stdin_fh, stdout=out, stderr=err,
                pass_fds=tuple(fd for fd in (write_end, seccomp_fd) if fd is not None),
                start_new_session=True,  # its own process group: a timeout kills everything it started
                preexec_fn=_child_setup(limits, cgroup, box.nproc_binds),
            )  # fmt: skip
        os.close(write_end)
        opened.remove(write_end)
        deadline = time.monotonic() + limits.timeout_s
        while status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                status = "timeout"
            elif select.select([read_end], [], [], left)[0]:
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break  # every writer closed it: the program ended (or closed fd 3)
                size += len(chunk)
                if size > limits.record_bytes:
                    status = "flood"
                    break
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    records.append(line.decode(errors="replace"))
                    if stop is not None and stop(records[-1]):
                        status = "stopped"
                        break
        if status is None:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                status = "timeout"
    finally:
        for fd in opened:
            os.close(fd)
        if proc is not None:
            kill_group(proc.pid)  # children it started (same group) die too; wait until they are gone
        _remove_cgroup(cgroup)
        if proc is not None:
            proc.wait()
    out = (host / "stdout").read_bytes()[: limits.file_bytes].decode(errors="replace")
    err = (host / "stderr").read_bytes()[-4000:].decode(errors="replace")
    if status is None:
        status = "ok" if proc.returncode == 0 else "error"
    return RunResult(status, proc.returncode if status in ("ok", "error") else None, out, err, records)


def _child_setup(limits: Limits, cgroup: Path | None, nproc_binds: bool):
    nproc = _user_task_count(os.geteuid()) + limits.tasks if nproc_binds else None
    procs = str(cgroup / "cgroup.procs") if cgroup is not None else None

    def apply() -> None:  # runs in the child between fork and exec: before it can start anything
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def _user_task_count(uid: int) -> int:
    """Tasks (threads included, as RLIMIT_NPROC counts them) that `uid` runs now."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                pass
    return count


def _make_cgroup(box: Containment, limits: Limits) -> Path | None:
    if box.cgroup_root is None:
        return None
    path = box.cgroup_root / f"harness-sandbox-{os.getpid()}-{next(_RUN_NUMBER)}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(limits.tasks))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot make the sandbox's pids cgroup ({exc}); re-run, or free cgroups") from None
    return path


def _remove_cgroup(path: Path | None) -> None:
    """Kill every task still in the cgroup, wait for them to go, remove it."""
    if path is None:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)  # the kernel tears killed tasks down asynchronously
    try:
        path.rmdir()
    except OSError:
        pass


# EvalScope's LiveCodeBench runner (numpy inside) must not start a thread pool per core in every child.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
