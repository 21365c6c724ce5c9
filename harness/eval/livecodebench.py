"""LiveCodeBench's tests: the program runs contained, its outputs are judged where it cannot reach.

Only the test *inputs* enter the sandbox (harness.eval.sandbox). A driver there runs the program
on each input with EvalScope's own execution helpers (its prelude of imports, `__main__`
unwrapping, patched stdin, captured stdout, `Solution().<fn>` calls, per-test SIGALRM and
`reliability_guard`) and writes one record per test to a pipe: the raw output, or the error.
The harness compares each output with the expected one, which never enters the sandbox, by
EvalScope's rules (`grade_stdio`: stripped lines, equal or equal as decimals; `grade_call_based`:
`==` with a returned tuple taken as a list), and stops the program at the first failure as
EvalScope does. A program may print or write anything to any descriptor, the record pipe
included: all it can do is choose its own outputs, which is what it is judged on.

Results follow EvalScope: True per passed test, then at the first failure -2 wrong answer, -3 time
limit, -4 runtime or compile error; all -1 when the program is killed or ends before its tests
are done (EvalScope's global-timeout code).
"""

from __future__ import annotations

import json
import sys

from harness.eval.sandbox import Limits, run_program

_DRIVER = r"""
import json, os, signal, sys
from functools import partial

job = json.load(sys.stdin)
sys.path[:0] = job["paths"]
from evalscope.benchmarks.live_code_bench import testing_util as tu

channel = open(int(os.environ["HARNESS_RECORD_FD"]), "w", encoding="utf-8", closefd=False)

def send(**record):
    channel.write(json.dumps(record) + "\n")
    channel.flush()

def encode(value, top=False):
    # JSON that keeps what == tells apart: tuples, dict keys of any type; other objects equal nothing.
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, tuple) and top:
        value = list(value)  # EvalScope: a returned tuple counts as a list (only at the top)
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars compare like Python numbers
        return encode(value.item())
    return {"__opaque__": repr(value)[:200]}

signal.signal(signal.SIGALRM, partial(tu.timeout_handler, False))
tu.reliability_guard()
timeout, fn_name = job["timeout"], job["fn_name"]
try:
    if fn_name is None:
        solution = tu.compile_code(tu.make_function(tu.clean_if_name(job["code"])), timeout)
        method = tu.get_function(solution, "wrapped_function")
    else:
        method = tu.get_function(tu.compile_code(tu.import_string + "\n\n" + job["code"], timeout), fn_name)
    if method is None:
        raise TypeError("cannot unpack non-iterable NoneType object")  # EvalScope's message here
except BaseException as exc:
    send(compile_error=repr(exc)[:300])
    raise SystemExit(0)
for index, raw in enumerate(job["inputs"]):
    tu._set_alarm(timeout)
    try:
        if fn_name is None:
            with tu.Capturing() as captured:
                tu.call_method(method, raw)
            tu._set_alarm(0)
            send(i=index, out=captured[0])
        else:
            prediction = method(*[json.loads(line) for line in raw.split("\n")])
            tu._set_alarm(0)
            send(i=index, out=encode(prediction, top=True))
    except Exception as exc:
        tu._set_alarm(0)
        send(i=index, error="timeout" if "timeoutexception" in repr(exc).lower() else "runtime", detail=repr(exc)[:300])
        break
"""


class _Unequal:
    """A value the program returned that JSON cannot carry (a set, an object): equal to nothing."""

    def __eq__(self, other) -> bool:
        return False

    __hash__ = None


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            try:
                return {_decode(k): _decode(v) for k, v in value["__dict__"]}
            except TypeError:  # an unhashable key
                return _Unequal()
        return _Unequal()
    return value


def _stdio_mismatch(prediction: str, expected: str) -> str | None:
    """EvalScope's grade_stdio rule: None when they match, else its wrong-answer message."""
    from evalscope.benchmarks.live_code_bench.testing_util import (
        convert_line_to_decimals,
        get_stripped_lines,
        truncatefn,
    )

    got, want = get_stripped_lines(prediction), get_stripped_lines(expected)
    if len(got) != len(want):
        return "Wrong answer: mismatched output length"
    for output_line_idx, (line, reference) in enumerate(zip(got, want, strict=True)):
        if line == reference:
            continue
        ok_line, as_decimals = convert_line_to_decimals(line)
        ok_reference, reference_decimals = convert_line_to_decimals(reference)
        if ok_line and ok_reference and as_decimals == reference_decimals:
            continue
        return f"Wrong answer at {output_line_idx=}: {truncatefn(line)} != {truncatefn(reference)}"
    return None


class _Judge:
    """Compares each record with the expected output as it arrives; decides when to stop the program."""

    def __init__(self, outputs: list[str], call_based: bool):
        self.outputs, self.call_based = outputs, call_based
        self.results: list = []
        self.reason: str | None = None
        self.final = False  # a failure (or compile error) was seen, or every test passed

    def __call__(self, line: str) -> bool:
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a record")
        except (ValueError, RecursionError):
            record = {"i": len(self.results), "error": "runtime", "detail": "unreadable record"}
        if "compile_error" in record:
            self.results, self.reason = [-4], f"Error during testing: {record['compile_error']}"
        elif record.get("i") != len(self.results):
            return False  # not the test we are waiting for: a record only counts for the next test in turn
        elif "error" in record:
            timeout = record["error"] == "timeout"
            self.results.append(-3 if timeout else -4)
            self.reason = "Time Limit Exceeded" if timeout else "Runtime Error"
        else:
            mismatch = self._mismatch(record.get("out"), self.outputs[len(self.results)])
            self.results.append(True if mismatch is None else -2)
            self.reason = mismatch
        self.final = self.results[-1] is not True or len(self.results) == len(self.outputs)
        return self.final

    def _mismatch(self, out, expected: str) -> str | None:
        if not self.call_based:
            return _stdio_mismatch(out, expected) if isinstance(out, str) else "Wrong answer: no output"
        try:
            return None if _decode(out) == json.loads(expected) else "Wrong Answer"
        except (ValueError, RecursionError):
            return "Wrong Answer"


def _package_roots() -> tuple[str, ...]:
    """The folders EvalScope and numpy are imported from (a PYTHONPATH folder is no site-packages)."""
    import importlib.util
    from pathlib import Path

    roots = []
    for name in ("evalscope", "numpy"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.append(str(Path(next(iter(spec.submodule_search_locations))).parent))
    return tuple(roots)


def run_livecodebench(code: str, tests_json: str, timeout_s: float = 6.0, *, allow_weak: bool = False) -> tuple:
    """Per-test results of `code` on LiveCodeBench tests, with EvalScope's codes, and why it failed.

    `tests_json` is EvalScope's `evaluation_sample` ({"inputs", "outputs", "fn_name"}). The second
    value is EvalScope's error message (or the sandbox's status), None when every test passed.
    """
    tests = json.loads(tests_json)
    inputs, outputs = tests["inputs"], tests["outputs"]
    if not inputs:
        raise ValueError("a LiveCodeBench problem without tests cannot be scored")  # refused at load already
    budget = (timeout_s + 1) * len(inputs)  # EvalScope's global timeout for one generation
    limits = Limits(timeout_s=budget + 10, cpu_s=int(budget) + 10, memory_bytes=4 << 30)  # +10 s: imports
    job = json.dumps({"code": code, "inputs": inputs, "fn_name": tests.get("fn_name"), "timeout": timeout_s,
                      "paths": [p for p in sys.path if p]})  # fmt: skip
    judge = _Judge(outputs, tests.get("fn_name") is not None)
    result = run_program(_DRIVER, job, limits, ro_paths=_package_roots(), allow_weak=allow_weak, stop=judge)
    if judge.final:
        return judge.results, judge.reason
    tail = result.stderr.strip().splitlines()[-1:] or [""]
    done = len(judge.results)
    return [-1] * len(inputs), f"sandbox: {result.status} after {done} of {len(inputs)} tests {tail[0]}".strip()
