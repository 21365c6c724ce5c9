"""Benchmarks behind one registry: how to load, prompt and score each.

Prompts are EvalScope 1.14's (the version pinned in docs/EVAL.md), so scores are comparable
with EvalScope runs; answers are read after `</think>` as in InfiR2's eval scripts. Defaults
for k and max_tokens are InfiR2's settings (used when a suite does not set them).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from harness.errors import InvalidInput
from harness.eval import scoring
from harness.eval.local_data import require


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str  # the user message
    target: str  # reference answer as text ("" for code: the tests decide)
    meta: dict = field(default_factory=dict, compare=False)  # e.g. LiveCodeBench tests


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
    load: Callable[[list[dict]], list[Problem]]  # records of the local folder -> problems
    score: Callable[[Problem, str], tuple[str | None, float]]  # (problem, output) -> (extracted, score)
    samples: int  # InfiR2's k
    max_tokens: int  # InfiR2's limit
    hub: HubSource | None = None  # None: generated locally, needs no data folder
    generate: Callable[[int], list[Problem]] | None = None  # local benchmarks: n -> problems


# ---------------------------------------------------------------- AIME

AIME24_PROMPT = "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
AIME25_PROMPT = (
    "\nSolve the following math problem step by step. Put your answer inside \\boxed{{}}.\n\n"
    "{question}\n\nRemember to put your answer inside \\boxed{{}}."
)


def _aime_loader(template: str, name: str, question_keys: tuple[str, ...]):
    def load(records: list[dict]) -> list[Problem]:
        problems = []
        for i, record in enumerate(records):
            key = next((k for k in question_keys if k in record), None)
            require(record, (key or question_keys[0], "answer"), name, i)
            pid = str(record.get("id", f"{name}-{i}"))
            problems.append(Problem(pid, template.format(question=record[key]), str(record["answer"]).strip()))
        return problems

    return load


def _score_math(problem: Problem, output: str) -> tuple[str | None, float]:
    return scoring.score_math(output, problem.target)


# ---------------------------------------------------------------- GPQA-Diamond

# EvalScope's MultipleChoiceTemplate.SINGLE_ANSWER_COT (zero-shot, `ANSWER: X` last line).
GPQA_PROMPT = (
    "Answer the following multiple choice question. The last line of your response should be of the following "
    "format: 'ANSWER: [LETTER]' (without quotes) where [LETTER] is one of {letters}. Think step by step before "
    "answering.\n\n{question}\n\n{choices}"
)


def _gpqa_clean(text) -> str:
    import re

    text = " " if text is None else str(text).strip()
    text = text.replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def _load_gpqa(records: list[dict]) -> list[Problem]:
    fields = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
    problems = []
    for i, record in enumerate(records):
        require(record, fields, "gpqa_diamond", i)
        pid = str(record.get("Record ID") or hashlib.sha1(record["Question"].encode()).hexdigest()[:12])
        correct = _gpqa_clean(record["Correct Answer"])
        choices = [_gpqa_clean(record[f"Incorrect Answer {j}"]) for j in (1, 2, 3)] + [correct]
        # EvalScope shuffles with an unseeded RNG; we seed by problem id so every arm and every
        # re-run sees the same order (a paired comparison needs identical prompts).
        random.Random(f"gpqa:{pid}").shuffle(choices)
        letters = "ABCD"
        text = GPQA_PROMPT.format(
            letters=",".join(letters),
            question=record["Question"],
            choices="\n".join(f"{letter}) {choice}" for letter, choice in zip(letters, choices, strict=True)),
        )
        problems.append(Problem(pid, text, letters[choices.index(correct)]))
    return problems


def _score_gpqa(problem: Problem, output: str) -> tuple[str | None, float]:
    return scoring.score_choice(output, problem.target)


# ---------------------------------------------------------------- LiveCodeBench

LCB_START, LCB_END = datetime(2024, 8, 1), datetime(2025, 2, 1)  # DeepSeek-R1 / InfiR2 window: 279 problems
LCB_PROMPT = "### Question:\n{question}\n\n{format_prompt} ### Answer: (use the provided format with backticks)\n\n"
LCB_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
LCB_WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
    "sample inputs). Enclose your code within delimiters as follows."
)


def _lcb_tests(raw) -> list[dict]:
    if isinstance(raw, list):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        # The hub's private tests are base64(zlib(pickle(json string))): unpickle plain data only, never code.
        return json.loads(_PlainDataUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(raw.encode())))).load())


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads strings, numbers, lists and dicts; refuses every class or function a pickle names."""

    def find_class(self, module: str, name: str):
        raise InvalidInput(
            f"livecodebench private_test_cases: the pickle names {module}.{name}; only plain data is loaded. "
            "Re-export the benchmark with `harness data livecodebench_v5`"
        )


def _load_lcb(records: list[dict]) -> list[Problem]:
    fields = ("question_id", "question_content", "contest_date", "public_test_cases", "private_test_cases")
    problems = []
    for i, record in enumerate(records):
        require(record, fields, "livecodebench_v5", i)
        date = datetime.fromisoformat(str(record["contest_date"])).replace(tzinfo=None)
        if not LCB_START <= date <= LCB_END:
            continue
        starter = record.get("starter_code") or ""
        if starter:
            format_prompt = f"### Format: {LCB_WITH_STARTER}\n```python\n{starter}\n```\n\n"
        else:
            format_prompt = f"### Format: {LCB_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
        tests = _lcb_tests(record["public_test_cases"]) + _lcb_tests(record["private_test_cases"])
        metadata = record.get("metadata") or "{}"
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        meta = {
            "inputs": [t["input"] for t in tests],
            "outputs": [t["output"] for t in tests],
            "fn_name": metadata.get("func_name"),
        }
        text = LCB_PROMPT.format(question=record["question_content"], format_prompt=format_prompt)
        problems.append(Problem(str(record["question_id"]), text, f"{len(tests)} tests", meta))
    return problems


def _score_lcb(problem: Problem, output: str) -> tuple[str | None, float]:
    from harness.eval.sandbox import run_tests

    code = scoring.extract_code(output)
    if not code:
        return None, 0.0
    passed, _ = run_tests(code, problem.meta["inputs"], problem.meta["outputs"], problem.meta.get("fn_name"))
    return code, float(passed)


# ---------------------------------------------------------------- arith (local, CI)


def _generate_arith(n: int) -> list[Problem]:
    from harness.data.arith import problems

    # The SFT set (builtin:arith-sft) shows the bare problem as the user turn: prompt the same way.
    return [Problem(p["id"], p["problem"], p["answer"]) for p in problems(n, "test")]


ARITH_SIZE = 200  # problems when no limit is set

REGISTRY: dict[str, Benchmark] = {
    "aime24": Benchmark(
        "aime24",
        _aime_loader(AIME24_PROMPT, "aime24", ("problem", "question")),
        _score_math,
        samples=32,
        max_tokens=31000,
        hub=HubSource("HuggingFaceH4/aime_2024", split="train"),
    ),
    "aime25": Benchmark(
        "aime25",
        _aime_loader(AIME25_PROMPT, "aime25", ("question", "problem")),
        _score_math,
        samples=32,
        max_tokens=31000,
        hub=HubSource("opencompass/AIME2025", ("AIME2025-I", "AIME2025-II"), "test"),
    ),
    "gpqa_diamond": Benchmark(
        "gpqa_diamond",
        _load_gpqa,
        _score_gpqa,
        samples=8,
        max_tokens=26000,
        hub=HubSource("Idavidrein/gpqa", ("gpqa_diamond",), "train"),
    ),
    "livecodebench_v5": Benchmark(
        "livecodebench_v5",
        _load_lcb,
        _score_lcb,
        samples=8,
        max_tokens=27000,
        hub=HubSource(
            "livecodebench/code_generation_lite",
            files=("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl"),
        ),
    ),
    "arith": Benchmark("arith", lambda records: [], _score_math, samples=2, max_tokens=16, generate=_generate_arith),
}

DEFAULT_BENCHMARKS = ("aime24", "aime25", "gpqa_diamond", "livecodebench_v5")


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark `name`; an error listing the known ones otherwise."""
    if name not in REGISTRY:
        raise InvalidInput(f"unknown benchmark {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]
