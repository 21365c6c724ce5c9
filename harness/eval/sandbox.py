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


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[str, list[str]]:
    """(level, command prefix): "netns+pidns+nobody", "netns+pidns" (user namespace) or "rlimits-only"."""
    unshare = shutil.which("unshare")
    if unshare:
        options = []
        if os.geteuid() == 0 and _world_executable(sandbox_python()):
            options.append(
                (
                    "netns+pidns+nobody",
                    [unshare, "-n", "-p", "-f", "--kill-child", "--setuid", str(NOBODY), "--setgid", str(NOBODY), "--"],
                )
            )
        options.append(("netns+pidns", [unshare, "-r", "-n", "-p", "-f", "--kill-child", "--"]))
        for level, prefix in options:
            try:
                probe = subprocess.run([*prefix, sandbox_python(), "-c", "pass"], capture_output=True, timeout=20)
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


def run_program(code: str, stdin: str = "", limits: Limits = Limits()) -> RunResult:
    """Run `code` as a Python program fed `stdin`; never raises for anything the program does."""
    level, prefix = isolation()
    as_nobody = level.endswith("nobody")
    with tempfile.TemporaryDirectory(prefix="harness-sandbox-") as scratch:
        script = Path(scratch) / "main.py"
        script.write_text(code)
        if as_nobody:
            os.chmod(scratch, 0o777)  # nobody must write its scratch files
            script.chmod(0o644)
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        # Output goes to files (capped by RLIMIT_FSIZE), not pipes: a program printing forever cannot fill our memory.
        out_path, err_path = Path(scratch) / ".stdout", Path(scratch) / ".stderr"
        with out_path.open("wb") as out_fh, err_path.open("wb") as err_fh:
            proc = subprocess.Popen(
                [*prefix, sandbox_python(), "-I", str(script)],
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


# LiveCodeBench's harness runs every program after these imports (its `import_string`), and
# generated solutions rely on them (e.g. `List` without `from typing import List`).
PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom typing import *\n"
    "import string, re, datetime, collections, heapq, bisect, copy, math, random, statistics, itertools\n"
    "import functools, operator, io, sys, json\nsys.setrecursionlimit(50000)\n"
)

# Call-based problems (LeetCode style): the starter code defines `class Solution` with `fn_name`;
# each test input is one JSON value per line (the arguments), the output one JSON value.
_CALL_DRIVER = """
{code}
import json, sys
_args = [json.loads(line) for line in sys.stdin.read().splitlines() if line.strip()]
_result = getattr(Solution(), {fn_name!r})(*_args)
print(json.dumps(_result))
"""


def _same_output(actual: str, expected: str) -> bool:
    """LiveCodeBench compares stdout line by line after stripping whitespace."""
    got = [line.strip() for line in actual.strip().splitlines()]
    want = [line.strip() for line in expected.strip().splitlines()]
    return got == want


def run_tests(
    code: str, inputs: list[str], outputs: list[str], fn_name: str | None = None, limits: Limits = Limits()
) -> tuple[bool, str]:
    """Run every test; (all passed, reason of the first failure or "passed"). Stops at the first failure."""
    program = PRELUDE + (_CALL_DRIVER.format(code=code, fn_name=fn_name) if fn_name else code)
    for index, (given, expected) in enumerate(zip(inputs, outputs, strict=True)):
        result = run_program(program, given, limits)
        if result.status != "ok":
            tail = result.stderr.strip().splitlines()[-1:] or [""]
            return False, f"test {index}: {result.status} {tail[0]}".strip()
        if fn_name:
            try:
                same = json.loads(result.stdout.strip() or "null") == json.loads(expected)
            except json.JSONDecodeError:
                same = _same_output(result.stdout, expected)
        else:
            same = _same_output(result.stdout, expected)
        if not same:
            return False, f"test {index}: wrong answer"
    return True, "passed"
