"""What this machine can contain untrusted programs with, found once per process.

`find(trial)` probes for bubblewrap, libseccomp (through pyseccomp) and a pids cgroup it may make
children under, runs a trial program through `trial` (harness.eval.sandbox's runner, passed in so
that this module does not import it back), and returns the `Containment` that the sandbox uses
(`harness.eval.sandbox.containment()`); its `level` goes into summary.json as `sandbox`:

    bwrap+seccomp+pids-cgroup    root with a writable pids cgroup (this dev/CI machine)
    bwrap+seccomp+rlimit-nproc   a non-root user (RLIMIT_NPROC binds everyone but root)
    bwrap+seccomp+no-threads     root without a cgroup: threads are refused too
    weak:unshare / weak:rlimits  no usable bwrap, or no binding process cap: refused unless allowed
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InvalidInput

BWRAP_ENV = "HARNESS_BWRAP"  # path of bwrap to use; "" disables it (tests of the weak path)
CLONE_THREAD = 0x00010000
WEAK_HINT = (
    "install bubblewrap (apt-get install bubblewrap / dnf install bubblewrap) and allow user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1 where it exists), or accept the weak sandbox for this "
    "evaluation with `harness eval --allow-weak-sandbox` / `eval.allow_weak_sandbox = true`"
)


@dataclass(frozen=True)
class Containment:
    level: str  # e.g. "bwrap+seccomp+pids-cgroup"; "weak:..." when the file system is not contained
    bwrap: str | None = None
    seccomp: bytes | None = None  # compiled BPF program
    cgroup_root: Path | None = None  # where per-run pids cgroups are made
    nproc_binds: bool = False  # RLIMIT_NPROC caps this user (not root)
    tmpfs_size: bool = False  # this bwrap takes --size for its tmpfs
    reason: str = ""  # why a strong containment is not available

    @property
    def weak(self) -> bool:
        return self.level.startswith("weak:")


def _seccomp_filter(allow_threads: bool) -> bytes | None:
    """The BPF program refusing process creation (and threads unless allowed); None without libseccomp."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError):  # OSError: pyseccomp found no libseccomp.so
        return None
    deny = sc.SyscallFilter(defaction=sc.ALLOW)
    deny.add_rule(sc.ERRNO(errno.EAGAIN), "fork")
    deny.add_rule(sc.ERRNO(errno.EAGAIN), "vfork")
    if allow_threads:
        deny.add_rule(sc.ERRNO(errno.EAGAIN), "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    else:
        deny.add_rule(sc.ERRNO(errno.EAGAIN), "clone")
    deny.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags sit behind a pointer: glibc falls back to clone
    for name in _DENIED_SYSCALLS:
        try:
            deny.add_rule(sc.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError, OSError):  # not a system call on this architecture / libseccomp
            continue
    with tempfile.TemporaryFile() as fh:
        deny.export_bpf(fh)
        fh.seek(0)
        return fh.read()


_DENIED_SYSCALLS = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv",
    "process_vm_writev", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "open_by_handle_at", "kexec_load",
    "init_module", "finit_module", "delete_module",
)  # fmt: skip


def _pids_cgroup_root() -> Path | None:
    """A cgroup folder with the pids controller under which this process may make child cgroups."""
    own = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else ["(v2)"]:
                own[name] = path
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in mounts:
        fields = line.split()
        sep = fields.index("-")
        mount_point, fstype, options = fields[4], fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup" and "pids" in options.split(",") and "pids" in own:
            candidates.append(Path(mount_point) / own["pids"].lstrip("/"))
        elif fstype == "cgroup2":
            for parent in (Path(mount_point) / own.get("(v2)", "/").lstrip("/"), Path(mount_point)):
                control = parent / "cgroup.subtree_control"
                if control.is_file() and "pids" in control.read_text().split():
                    candidates.append(parent)
    for root in candidates:
        probe = root / f"harness-probe-{os.getpid()}"
        try:
            probe.mkdir()
            (probe / "pids.max").write_text("8")
            probe.rmdir()
            return root
        except OSError:
            try:
                probe.rmdir()
            except OSError:
                pass
    return None


def _bwrap_path() -> str | None:
    configured = os.environ.get(BWRAP_ENV)
    if configured is not None:
        return configured or None
    return shutil.which("bwrap")


@functools.cache
def _probe(bwrap: str | None, trial) -> Containment:
    cgroup = _pids_cgroup_root()
    nproc_binds = os.geteuid() != 0
    seccomp = _seccomp_filter(allow_threads=bool(cgroup) or nproc_binds)
    cap = "pids-cgroup" if cgroup else "rlimit-nproc" if nproc_binds else "no-threads" if seccomp else None
    if not bwrap:
        reason = "bubblewrap (bwrap) is not installed"
    elif not cap:
        reason = "no binding process cap: running as root without a writable pids cgroup or libseccomp"
    else:
        try:
            help_text = subprocess.run([bwrap, "--help"], capture_output=True, text=True).stdout
            candidate = Containment("probe", bwrap, seccomp, cgroup, nproc_binds, "--size" in help_text)
            result = trial(candidate)
            if result.status == "ok":
                level = "+".join(["bwrap", *(["seccomp"] if seccomp else []), cap])
                return Containment(level, bwrap, seccomp, cgroup, nproc_binds, candidate.tmpfs_size)
            reason = f"bwrap failed here: {result.stderr.strip()[-300:] or result.status}"
        except OSError as exc:
            reason = f"bwrap could not start: {exc}"
    weak = Containment("weak:unshare", cgroup_root=cgroup, nproc_binds=nproc_binds, reason=reason)
    try:
        if subprocess.run([*weak_prefix(weak), "true"], capture_output=True, timeout=20).returncode == 0:
            return weak
    except (OSError, subprocess.TimeoutExpired, TypeError):  # TypeError: no unshare on PATH
        pass
    return Containment("weak:rlimits", cgroup_root=cgroup, nproc_binds=nproc_binds, reason=reason)


def find(trial, *, allow_weak: bool = False) -> Containment:
    """What contains untrusted programs here; InvalidInput naming the fix when only a weak sandbox exists
    and `allow_weak` is not set. `trial(candidate) -> RunResult` runs `pass` inside a candidate."""
    found = _probe(_bwrap_path(), trial)
    if found.weak and not allow_weak:
        raise InvalidInput(
            f"LiveCodeBench runs model-written programs, and this machine cannot contain them ({found.reason}); "
            f"{WEAK_HINT}"
        )
    return found


def weak_prefix(box: Containment) -> list[str]:
    """unshare(1): a network and a PID namespace only (a user namespace too when not root)."""
    if box.level != "weak:unshare":
        return []
    return [shutil.which("unshare"), "-n", "-p", "-f", "--kill-child", *(["-r"] if box.nproc_binds else []), "--"]
