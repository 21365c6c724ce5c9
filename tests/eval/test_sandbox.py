"""Generated programs run in a limited child process (EvalScope's LiveCodeBench runner inside our sandbox):
pass, fail, time out, and cannot run away."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.eval.sandbox import Limits, isolation, run_livecodebench, run_program

ADD = "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n"


def _processes_running(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line mentions marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _tests(inputs, outputs, fn_name=None) -> str:
    return json.dumps({"inputs": inputs, "outputs": outputs, "fn_name": fn_name})


def test_correct_stdin_program_passes_every_test():
    results, reason = run_livecodebench(ADD, _tests(["1 2\n", "10 -3\n"], ["3\n", "7"]))
    assert results == [True, True] and reason is None


def test_wrong_program_fails_with_evalscope_reason():
    results, reason = run_livecodebench(ADD.replace("a + b", "a - b"), _tests(["1 2\n", "5 5\n"], ["3", "10"]))
    assert results == [-2] and "Wrong answer" in reason  # EvalScope's code for a wrong answer


def test_crashing_program_fails():
    results, _ = run_livecodebench("import sys\nsys.exit(int(input()) // 0)\n", _tests(["1\n"], ["x"]))
    assert results[-1] is not True


def test_slow_program_hits_the_per_test_time_limit():
    results, reason = run_livecodebench("while True:\n    pass\n", _tests(["\n"], ["x"]), timeout_s=1.0)
    assert results == [-3] and reason == "Time Limit Exceeded"
    assert not _processes_running("harness-sandbox-")


def test_call_based_problem_uses_solution_class():
    code = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        return [0, 1]\n"
    assert run_livecodebench(code, _tests(["[2, 7, 11]\n9"], ["[0, 1]"], "twoSum"))[0] == [True]
    assert run_livecodebench(code, _tests(["[2, 7, 11]\n18"], ["[1, 2]"], "twoSum"))[0] != [True]


def test_fork_bomb_in_evalscope_runner_fails_and_leaves_nothing_running():
    results, _ = run_livecodebench("import os\nwhile True:\n    os.fork()\n", _tests(["\n"], ["x"]), timeout_s=2.0)
    assert results[-1] is not True
    assert not _processes_running("harness-sandbox-")


def test_evalscope_runner_has_no_network_inside_the_sandbox():
    code = (
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('net')\n"
        "except OSError:\n    print('no-net')\n"
    )
    results, _ = run_livecodebench(code, _tests(["\n"], ["no-net"]))
    if isolation(sys.executable)[0] != "rlimits-only":
        assert results == [True]


def test_infinite_loop_is_killed_at_the_wall_clock_limit():
    result = run_program("while True:\n    pass\n", limits=Limits(timeout_s=1.0, cpu_s=30))
    assert result.status == "timeout"
    assert not _processes_running("harness-sandbox-")


def test_sleeping_children_die_with_the_program():
    code = (
        "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "import time\ntime.sleep(300)\n"
    )
    assert run_program(code, limits=Limits(timeout_s=1.0)).status == "timeout"
    assert not _processes_running("time.sleep(300)")


def test_fork_bomb_is_contained():
    result = run_program("import os\nwhile True:\n    os.fork()\n", limits=Limits(timeout_s=5.0, processes=32))
    assert result.status in ("error", "timeout")
    assert not _processes_running("harness-sandbox-")


def test_huge_allocation_fails_inside_the_child():
    result = run_program("x = bytearray(50 * 1024**3)\nprint('allocated')\n")
    assert result.status == "error" and "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


def test_program_runs_in_a_scratch_directory_without_network():
    code = (
        "import os, socket\nprint(os.getcwd())\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('net')\n"
        "except OSError:\n    print('no-net')\n"
    )
    result = run_program(code)
    cwd, net = result.stdout.split()
    assert "harness-sandbox-" in cwd and not Path(cwd).exists()  # scratch removed afterwards
    if isolation()[0] != "rlimits-only":
        assert net == "no-net"


def test_output_flood_is_capped_by_the_file_size_limit():
    result = run_program("while True:\n    print('x' * 1000)\n", limits=Limits(timeout_s=5.0, file_bytes=1 << 20))
    assert result.status == "error"
    assert len(result.stdout) <= 1 << 20
