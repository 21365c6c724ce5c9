"""Generated programs run in a limited child process: pass, fail, time out, and cannot run away."""

from __future__ import annotations

from pathlib import Path

from harness.eval.sandbox import Limits, isolation, run_program, run_tests

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


def test_correct_stdin_program_passes_all_tests():
    assert run_tests(ADD, ["1 2\n", "10 -3\n"], ["3\n", "7"]) == (True, "passed")


def test_wrong_program_fails_with_reason():
    passed, reason = run_tests(ADD.replace("a + b", "a - b"), ["1 2\n", "5 5\n"], ["3", "10"])
    assert not passed and reason == "test 0: wrong answer"


def test_crashing_program_fails():
    passed, reason = run_tests("raise SystemExit(3)", ["\n"], ["x"])
    assert not passed and reason.startswith("test 0: error")


def test_call_based_problem_uses_solution_class():
    code = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        return [0, 1]\n"
    assert run_tests(code, ["[2, 7, 11]\n9"], ["[0, 1]"], fn_name="twoSum") == (True, "passed")
    assert run_tests(code, ["[2, 7, 11]\n18"], ["[1, 2]"], fn_name="twoSum")[0] is False


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
