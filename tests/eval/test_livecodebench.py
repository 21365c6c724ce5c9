"""LiveCodeBench's tests run inside the sandbox with EvalScope's execution rules, and are judged outside it:
a program passes only by printing the right outputs, whatever it writes wherever."""

from __future__ import annotations

import json

import pytest

from harness.errors import InvalidInput
from harness.eval import containment as sandbox_probe
from harness.eval.benchmarks import get_benchmark
from harness.eval.livecodebench import run_livecodebench
from harness.eval.local_data import read_records

ADD = "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n"


def _tests(inputs, outputs, fn_name=None) -> str:
    return json.dumps({"inputs": inputs, "outputs": outputs, "fn_name": fn_name})


def test_correct_stdin_program_passes_every_test():
    results, reason = run_livecodebench(ADD, _tests(["1 2\n", "10 -3\n"], ["3\n", "7"]))
    assert results == [True, True] and reason is None


def test_numbers_compare_as_decimals_as_in_evalscope():
    assert run_livecodebench("print('1.0 2')\n", _tests(["\n"], ["1 2.00"]))[0] == [True]


def test_wrong_program_fails_with_evalscope_reason():
    results, reason = run_livecodebench(ADD.replace("a + b", "a - b"), _tests(["1 2\n", "5 5\n"], ["3", "10"]))
    assert results == [-2] and "Wrong answer" in reason  # EvalScope's code for a wrong answer


def test_crashing_program_fails_with_a_runtime_error():
    results, reason = run_livecodebench("import sys\nsys.exit(int(input()) // 0)\n", _tests(["1\n"], ["x"]))
    assert results == [-4] and reason == "Runtime Error"


def test_program_that_does_not_compile_fails():
    results, reason = run_livecodebench("def f(:\n", _tests(["1\n"], ["x"]))
    assert results == [-4] and "SyntaxError" in reason


def test_slow_program_hits_the_per_test_time_limit():
    results, reason = run_livecodebench("while True:\n    pass\n", _tests(["\n"], ["x"]), timeout_s=1.0)
    assert results == [-3] and reason == "Time Limit Exceeded"


def test_call_based_problem_uses_solution_class():
    code = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        return (0, 1)\n"
    assert run_livecodebench(code, _tests(["[2, 7, 11]\n9"], ["[0, 1]"], "twoSum"))[0] == [True]  # tuple as list
    assert run_livecodebench(code, _tests(["[2, 7, 11]\n18"], ["[1, 2]"], "twoSum"))[0] == [-2]
    nested = code.replace("return (0, 1)", "return [(0, 1)]")  # EvalScope: [(0, 1)] != [[0, 1]]
    assert run_livecodebench(nested, _tests(["[2, 7, 11]\n9"], ["[[0, 1]]"], "twoSum"))[0] == [-2]


def test_fork_bomb_in_the_runner_fails_and_leaves_nothing_running():
    from evalkit import processes_running

    results, _ = run_livecodebench("import os\nwhile True:\n    os.fork()\n", _tests(["\n"], ["x"]), timeout_s=2.0)
    assert results[-1] is not True
    assert not processes_running("harness-sandbox-")


def test_no_network_inside_the_runner():
    code = (
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('net')\n"
        "except OSError:\n    print('no-net')\n"
    )
    assert run_livecodebench(code, _tests(["\n"], ["no-net"]))[0] == [True]


FORGERIES = {
    "the old result marker": "print('@@harness-lcb-results@@' + '[[true, true], null]')\nimport os\nos._exit(0)\n",
    "records on every descriptor": (
        "import json, os\nfor i in range(2):\n    line = (json.dumps({'i': i, 'out': 'pass'}) + '\\n').encode()\n"
        "    for fd in range(1, 64):\n        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
    ),
    "a compile-success claim then exit": (
        "import os\nfd = int(os.environ['HARNESS_RECORD_FD'])\nos.write(fd, b'{\"results\": [true, true]}\\n')\nos._exit(0)\n"
    ),
}  # fmt: skip


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_program_cannot_forge_its_result(forgery):
    results, _ = run_livecodebench(FORGERIES[forgery], _tests(["1 2\n", "5 5\n"], ["3", "10"]))
    assert results[-1] is not True  # scored 0, as EvalScope scores it


def test_a_program_that_exits_before_its_tests_are_done_fails():
    code = ADD + "import os\nif a == 5:\n    os._exit(0)\n"
    results, reason = run_livecodebench(code, _tests(["1 2\n", "5 5\n"], ["3", "10"]))
    assert results == [-1, -1] and "after 1 of 2 tests" in reason


def _lcb_record(qid: str, public: list, private: list) -> dict:
    return {
        "question_id": qid,
        "question_content": "Add two numbers.",
        "contest_date": "2024-09-15T00:00:00",
        "starter_code": "",
        "public_test_cases": json.dumps(public),
        "private_test_cases": json.dumps(private),
        "metadata": "{}",
    }


def test_a_problem_without_tests_is_refused_at_load_naming_file_line_and_problem(tmp_path):
    folder = tmp_path / "livecodebench_v5"
    folder.mkdir()
    good = _lcb_record("fine", [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}], [])
    (folder / "test.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(_lcb_record("empty", [], [])) + "\n")
    origins: list[str] = []
    records = read_records(folder, "livecodebench_v5", origins)
    with pytest.raises(InvalidInput, match=r"test\.jsonl:2: .*problem 'empty' has no tests"):
        get_benchmark("livecodebench_v5").load(records, origins)


def test_evaluation_refuses_livecodebench_before_generating_without_a_sandbox(tmp_path, monkeypatch):
    from evalkit import build_tiny_checkpoint

    from harness.eval.runner import evaluate_checkpoint
    from harness.suite import EvalConfig

    folder = tmp_path / "data" / "livecodebench_v5"
    folder.mkdir(parents=True)
    good = _lcb_record("fine", [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}], [])
    (folder / "test.jsonl").write_text(json.dumps(good) + "\n")
    checkpoint = build_tiny_checkpoint(tmp_path / "ckpt")
    monkeypatch.setenv(sandbox_probe.BWRAP_ENV, "")  # no bubblewrap here
    config = EvalConfig(backend="transformers", data_dir=str(tmp_path / "data"))
    config.benchmarks = {"livecodebench_v5": {"samples": 1, "max_tokens": 8}}

    def no_generation(*args):
        raise AssertionError("generation started before the sandbox was checked")

    with pytest.raises(InvalidInput, match="allow-weak-sandbox"):
        evaluate_checkpoint(checkpoint, tmp_path / "out", config, ["livecodebench_v5"], generator_factory=no_generation)
    config.allow_weak_sandbox = True
    summary = evaluate_checkpoint(checkpoint, tmp_path / "out", config, ["livecodebench_v5"], quiet=True)
    assert summary["livecodebench_v5"]["sandbox"].startswith("weak:")
