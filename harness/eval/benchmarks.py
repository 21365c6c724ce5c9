"""Benchmarks behind one registry: where each one's data comes from and which EvalScope adapter prompts and scores it.

A benchmark here is thin: it maps local records onto the columns EvalScope's adapter reads,
gives every problem a stable id (the cache, the seeds and the paired comparison key on it), and
names the adapter. Prompts, answer extraction and scoring are EvalScope's
(harness.eval.evalscope_engine). Defaults for k and max_tokens are InfiR2's settings.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.errors import InvalidInput
from harness.eval import evalscope_engine as engine
from harness.eval.local_data import require


@dataclass(frozen=True)
class Problem:
    id: str
    messages: tuple[dict, ...]  # the chat turns sent to the model (EvalScope's prompt)
    target: str  # reference answer as text (LiveCodeBench: "<n> tests": the tests decide)
    sample: Any = field(default=None, compare=False, repr=False)  # EvalScope's Sample: the scoring context

    @property
    def prompt(self) -> str:
        """The user message (the `prompt` column of samples.parquet)."""
        return self.messages[-1]["content"]

    @property
    def system_prompt(self) -> str | None:
        return next((m["content"] for m in self.messages if m["role"] == "system"), None)


@dataclass(frozen=True)
class HubSource:
    """Where `harness data export` fetches a benchmark from (Hugging Face hub)."""

    repo: str
    configs: tuple[str | None, ...] = (None,)
    split: str = "train"
    files: tuple[str, ...] = ()  # raw files to download instead of load_dataset (LiveCodeBench)


@dataclass(frozen=True)
class Benchmark:
    name: str
    adapter: str  # EvalScope's registered benchmark that prompts and scores it
    prepare: Callable[[dict, int], tuple[str, dict]]  # (record, index) -> (problem id, record in the adapter's columns)
    required: tuple[str, ...]  # columns a local record must have
    samples: int  # InfiR2's k
    max_tokens: int  # InfiR2's limit
    hub: HubSource | None = None  # None: generated locally, needs no data folder
    generate: Callable[[int], list[dict]] | None = None  # local benchmarks: n -> records
    template: bool = True  # False: the bare question is the prompt (arith, as its SFT data shows it)
    code: bool = False  # programs are run against tests (in harness.eval.sandbox)

    def window(self, config=None) -> tuple[str, str]:
        """The contest_date range a code benchmark evaluates (ISO dates): the config's, else InfiR2's."""
        start = getattr(config, "start_date", None)
        end = getattr(config, "end_date", None)
        return (str(start) if start else engine.LCB_WINDOW[0], str(end) if end else engine.LCB_WINDOW[1])

    def _adapter(self, config=None):
        return engine.adapter(self.adapter, self.window(config)) if self.code else engine.adapter(self.adapter)

    def load(self, records: list[dict], origins: list[str] | None = None, config=None) -> list[Problem]:
        """Problems from local records, prompted by EvalScope's adapter (which may filter some out).

        `origins[i]` names where record i came from ("FILE:LINE"), for error messages; `config` (a
        BenchmarkConfig) picks LiveCodeBench's contest-date window.
        """
        bench_adapter = self._adapter(config)
        problems = []
        for index, record in enumerate(records):
            origin = origins[index] if origins else f"benchmark {self.name} record {index}"
            require(record, self.required, self.name, index, origin)
            pid, prepared = self.prepare(record, index)
            sample = engine.to_sample(bench_adapter, prepared, template=self.template)
            if sample is None:
                continue
            target = None
            if self.code:
                n_tests = len(json.loads(sample.metadata["evaluation_sample"])["inputs"])
                if not n_tests:  # with no tests any program would pass
                    raise InvalidInput(
                        f"{origin}: {self.name} problem {pid!r} has no tests (public_test_cases and "
                        "private_test_cases are both empty), so no program could fail it; remove the problem "
                        "or re-export the benchmark with `harness data export livecodebench_v5`"
                    )
                target = f"{n_tests} tests"
            problems.append(Problem(pid, engine.chat_messages(sample), target or str(sample.target), sample))
        return problems

    def score(self, problem: Problem, output: str, *, allow_weak_sandbox: bool = False) -> engine.Scored:
        """EvalScope's extraction and score for one output (code: its tests, run in our sandbox)."""
        bench_adapter = engine.adapter(self.adapter)  # extraction and scoring do not depend on the window
        if not self.code:
            return engine.score(bench_adapter, problem.sample, output)
        from harness.eval.livecodebench import run_livecodebench

        code = engine.extract_code(bench_adapter, problem.sample, output)
        if code is None:
            return engine.Scored(None, 0.0, "success", "no fenced code block")
        results, reason = run_livecodebench(
            code,
            problem.sample.metadata["evaluation_sample"],
            float(bench_adapter.review_timeout),
            allow_weak=allow_weak_sandbox,
        )
        return engine.Scored(code, float(engine.livecodebench_passed(results)), "success", reason)


# ---------------------------------------------------------------- AIME


def _aime(name: str):
    def prepare(record: dict, index: int) -> tuple[str, dict]:
        if "problem" not in record and "question" not in record:
            require(record, ("problem",), name, index)
        question = record["problem"] if "problem" in record else record["question"]
        return str(record.get("id", f"{name}-{index}")), {"problem": question, "answer": str(record["answer"]).strip()}

    return prepare


# ---------------------------------------------------------------- GPQA-Diamond
# EvalScope 1.14.1 derives the option order from a hash of the question (earlier releases shuffled
# unseeded), so both arms of a comparison and every re-run see the same prompt.


def _gpqa(record: dict, index: int) -> tuple[str, dict]:
    pid = record.get("Record ID") or hashlib.sha1(record["Question"].encode()).hexdigest()[:12]
    return str(pid), record


# ---------------------------------------------------------------- LiveCodeBench


def _lcb_tests(raw) -> list[dict]:
    """Test cases from a JSON string, a list, or the hub's base64(zlib(pickle(json))) private tests."""
    if isinstance(raw, list):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        # Unpickle plain data only, never code: EvalScope's own loader calls pickle.loads on this field.
        return json.loads(_PlainDataUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(raw.encode())))).load())


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads strings, numbers, lists and dicts; refuses every class or function a pickle names."""

    def find_class(self, module: str, name: str):
        raise InvalidInput(
            f"livecodebench private_test_cases: the pickle names {module}.{name}; only plain data is loaded. "
            "Re-export the benchmark with `harness data livecodebench_v5`"
        )


def _lcb(record: dict, index: int) -> tuple[str, dict]:
    # EvalScope's loader expects JSON strings and a naive ISO date; the private tests are decoded here,
    # safely, so its `pickle.loads` fallback never runs.
    metadata = record.get("metadata") or "{}"
    date = datetime.fromisoformat(str(record["contest_date"])).replace(tzinfo=None)
    prepared = {
        **record,
        "starter_code": record.get("starter_code") or "",
        "public_test_cases": json.dumps(_lcb_tests(record["public_test_cases"])),
        "private_test_cases": json.dumps(_lcb_tests(record["private_test_cases"])),
        "metadata": metadata if isinstance(metadata, str) else json.dumps(metadata),
        "contest_date": date.isoformat(),
    }
    return str(record["question_id"]), prepared


# ---------------------------------------------------------------- arith (local, CI)


def _generate_arith(n: int) -> list[dict]:
    from harness.data.arith import problems

    return problems(n, "test")


ARITH_SIZE = 200  # problems when no limit is set

REGISTRY: dict[str, Benchmark] = {
    "aime24": Benchmark(
        "aime24",
        "aime24",
        _aime("aime24"),
        ("answer",),
        samples=32,
        max_tokens=31000,
        hub=HubSource("HuggingFaceH4/aime_2024", split="train"),
    ),
    "aime25": Benchmark(
        "aime25",
        "aime25",
        _aime("aime25"),
        ("answer",),
        samples=32,
        max_tokens=31000,
        hub=HubSource("opencompass/AIME2025", ("AIME2025-I", "AIME2025-II"), "test"),
    ),
    "gpqa_diamond": Benchmark(
        "gpqa_diamond",
        "gpqa_diamond",
        _gpqa,
        ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
        samples=8,
        max_tokens=26000,
        hub=HubSource("Idavidrein/gpqa", ("gpqa_diamond",), "train"),
    ),
    "livecodebench_v5": Benchmark(
        "livecodebench_v5",
        "live_code_bench",
        _lcb,
        ("question_id", "question_content", "contest_date", "public_test_cases", "private_test_cases"),
        samples=8,
        max_tokens=27000,
        hub=HubSource(
            "livecodebench/code_generation_lite",
            files=("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl"),
        ),
        code=True,
    ),
    # Scored by EvalScope's AIME adapter, so CI runs EvalScope's scorer end to end; prompted with the
    # bare problem because that is the user turn of its SFT set (builtin:arith-sft).
    "arith": Benchmark(
        "arith",
        "aime24",
        _aime("arith"),
        ("answer",),
        samples=2,
        max_tokens=16,
        generate=_generate_arith,
        template=False,
    ),
}

DEFAULT_BENCHMARKS = ("aime24", "aime25", "gpqa_diamond", "livecodebench_v5")


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark `name`; an error listing the known ones otherwise."""
    if name not in REGISTRY:
        raise InvalidInput(f"unknown benchmark {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]
