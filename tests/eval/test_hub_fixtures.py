"""The committed benchmark folders (tests/fixtures/eval/hub) hold records in each hub dataset's own
schema (docs/EVAL.md); they load, prompt and score through EvalScope as the real exports do. The GPU
check (scripts/gpu_eval.sh) evaluates a checkpoint on them with vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.eval.benchmarks import get_benchmark
from harness.eval.local_data import read_records

HUB = Path(__file__).parents[1] / "fixtures" / "eval" / "hub"
RIGHT = {
    "aime24": lambda p: f"<think>Let me work it out.</think>The answer is \\boxed{{{p.target}}}.",
    "aime25": lambda p: f"So the answer is \\boxed{{{p.target}}}.",
    "gpqa_diamond": lambda p: f"Reasoning...\nANSWER: {p.target}",
}
PROGRAMS = {
    "fixture_abc001_a": "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
    "fixture_lc_1": "```python\nclass Solution:\n    def largest(self, nums: List[int]) -> int:\n        return max(nums)\n```",
}


@pytest.mark.parametrize("name", ["aime24", "aime25", "gpqa_diamond", "livecodebench_v5"])
def test_each_hub_schema_fixture_loads_prompts_and_scores_a_right_answer(name):
    bench = get_benchmark(name)
    origins: list[str] = []
    problems = bench.load(read_records(HUB / name, name, origins), origins)
    assert len(problems) >= 2 and len({p.id for p in problems}) == len(problems)
    for problem in problems:
        output = PROGRAMS[problem.id] if bench.code else RIGHT[name](problem)
        assert bench.score(problem, output).score == 1.0, (name, problem.id)
        assert bench.score(problem, "I do not know.").score == 0.0
