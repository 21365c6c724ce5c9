"""Run untrusted generated programs (LiveCodeBench) in a child process with hard limits.

Each run gets a fresh scratch directory as its working directory, a minimal environment, and
resource limits set before exec (CPU seconds, address space, file size, process count). Where
`unshare` works, the program also gets no network (a new network namespace), its own PID
namespace (so everything it forks dies with it) and, when we are root, drops to uid `nobody`
(root ignores RLIMIT_NPROC). On timeout the whole process group is killed. `isolation()` says
which of these this machine provides; docs/EVAL.md lists the levels.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.eval.procs import kill_group

NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    """Per-program limits; LiveCodeBench's own harness allows 6 s per test."""

    timeout_s: float = 6.0  # wall clock, whole program
    cpu_s: int = 10
    memory_bytes: int = 2 << 30  # RLIMIT_AS
    file_bytes: int = 16 << 20
    processes: int = 64  # beyond what the sandbox user already runs


@dataclass(frozen=True)
class RunResult:
    status: str  # "ok", "error" (non-zero exit), "timeout"
    returncode: int | None
    stdout: str
    stderr: str


def _world_executable(path: str) -> bool:
    """Whether uid nobody can run this file: it and every folder above it are world-executable."""
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & 0o001 for p in [real, *real.parents])


@functools.lru_cache(maxsize=1)
def sandbox_python() -> str:
    """An interpreter for generated programs (stdlib only); uid nobody must be able to run it when we are root."""
    candidates = [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"]
    if os.geteuid() != 0:
        return sys.executable
    for path in candidates:
        if path and os.path.exists(path) and _world_executable(path):
            return path
    return sys.executable


@functools.cache
def isolation(python: str | None = None) -> tuple[str, list[str]]:
    """(level, command prefix) for running `python` (default: sandbox_python()): "netns+pidns+nobody",
    "netns+pidns" (user namespace) or "rlimits-only"."""
    python = python or sandbox_python()
    unshare = shutil.which("unshare")
    if unshare:
        options = []
        if os.geteuid() == 0 and _world_executable(python):
            options.append(
                (
                    "netns+pidns+nobody",
                    [unshare, "-n", "-p", "-f", "--kill-child", "--setuid", str(NOBODY), "--setgid", str(NOBODY), "--"],
                )
            )
        options.append(("netns+pidns", [unshare, "-r", "-n", "-p", "-f", "--kill-child", "--"]))
        for level, prefix in options:
            try:
                probe = subprocess.run([*prefix, python, "-c", "pass"], capture_output=True, timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if probe.returncode == 0:
                return level, prefix
    return "rlimits-only", []


def _user_process_count(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _limit_setter(limits: Limits, uid: int):
    nproc = _user_process_count(uid) + limits.processes

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_program(code: str, stdin: str = "", limits: Limits = Limits(), python: str | None = None) -> RunResult:
    """Run `code` as a Python program fed `stdin` (with `python`, default a stdlib interpreter); never raises
    for anything the program does."""
    python = python or sandbox_python()
    level, prefix = isolation(python)
    as_nobody = level.endswith("nobody")
    with tempfile.TemporaryDirectory(prefix="harness-sandbox-") as scratch:
        script = Path(scratch) / "main.py"
        script.write_text(code)
        if as_nobody:
            os.chmod(scratch, 0o777)  # nobody must write its scratch files
            script.chmod(0o644)
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update({name: "1" for name in _ONE_THREAD})
        # Output goes to files (capped by RLIMIT_FSIZE), not pipes: a program printing forever cannot fill our memory.
        out_path, err_path = Path(scratch) / ".stdout", Path(scratch) / ".stderr"
        with out_path.open("wb") as out_fh, err_path.open("wb") as err_fh:
            proc = subprocess.Popen(
                [*prefix, python, "-I", str(script)],
                cwd=scratch,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out_fh,
                stderr=err_fh,
                start_new_session=True,  # own process group: a timeout kills everything it started
                preexec_fn=_limit_setter(limits, NOBODY if as_nobody else os.geteuid()),
            )
            status = None
            try:
                proc.communicate(stdin.encode(), timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                status = "timeout"
            finally:
                kill_group(proc.pid)  # children it started (same group) die too; wait until they are gone
                proc.wait()
        out = out_path.read_text(errors="replace")
        err = err_path.read_text(errors="replace")[-4000:]
    if status == "timeout":
        return RunResult("timeout", None, out, err)
    return RunResult("ok" if proc.returncode == 0 else "error", proc.returncode, out, err)


# EvalScope's LiveCodeBench runner (numpy inside) must not start a thread pool per core in every child.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_RESULTS_MARK = "@@harness-lcb-results@@"

# The child runs EvalScope's own LiveCodeBench test runner (its stdin/stdout and call-based grading,
# per-test SIGALRM timeouts, reliability_guard) on one generated program, inside this sandbox.
_LCB_DRIVER = f"""
import json, sys
from evalscope.benchmarks.live_code_bench.testing_util import run_test
job = json.loads(sys.stdin.read())
results, meta = run_test({{"input_output": job["tests"]}}, test=job["code"], debug=False, timeout=job["timeout"])
results = [r.item() if hasattr(r, "item") else r for r in results]
reason = meta.get("error_message") if isinstance(meta, dict) else None
sys.__stdout__.write("\\n{_RESULTS_MARK}" + json.dumps([results, reason]) + "\\n")
sys.__stdout__.flush()
"""


def run_livecodebench(code: str, tests_json: str, timeout_s: float = 6.0) -> tuple[list, str]:
    """Per-test results of EvalScope's LiveCodeBench runner on `code`, run in this sandbox.

    `tests_json` is EvalScope's `evaluation_sample` ({"inputs", "outputs", "fn_name"}). Results
    follow EvalScope: True per passed test, then at the first failure -1 compile error, -2 wrong
    answer, -3 time limit, -4 runtime error; all -1 when the whole run exceeds EvalScope's global
    limit ((timeout + 1) s per test) or the sandbox kills it. The second value says why it failed
    (EvalScope's error message, or the sandbox's status), None when every test passed.
    """
    n_tests = len(json.loads(tests_json)["inputs"])
    budget = (timeout_s + 1) * n_tests  # EvalScope's global timeout for one generation
    limits = Limits(timeout_s=budget + 10, cpu_s=int(budget) + 10, memory_bytes=4 << 30)  # +10 s: imports
    job = json.dumps({"tests": tests_json, "code": code, "timeout": timeout_s})
    result = run_program(_LCB_DRIVER, job, limits, python=sys.executable)
    marked = [line for line in result.stdout.splitlines() if line.startswith(_RESULTS_MARK)]
    if result.status != "ok" or not marked:
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        return [-1] * n_tests, f"sandbox: {result.status} {tail[0]}".strip()
    results, reason = json.loads(marked[-1][len(_RESULTS_MARK) :])
    return results, reason
