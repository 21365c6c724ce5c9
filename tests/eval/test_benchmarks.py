"""Benchmark loaders read the hub's own columns from local folders; EvalScope's adapters write the prompts."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from harness.errors import InvalidInput
from harness.eval.benchmarks import REGISTRY, get_benchmark
from harness.eval.local_data import benchmark_dir, read_records


def _gpqa_record(question="What is 2+2?"):
    return {
        "Question": question,
        "Correct Answer": "4",
        "Incorrect Answer 1": "3",
        "Incorrect Answer 2": "5",
        "Incorrect Answer 3": "22",
    }


def test_registry_has_the_paper_benchmarks_with_infir2_defaults():
    assert {"aime24", "aime25", "gpqa_diamond", "livecodebench_v5", "arith"} <= set(REGISTRY)
    assert (REGISTRY["aime24"].samples, REGISTRY["aime24"].max_tokens) == (32, 31000)
    assert (REGISTRY["gpqa_diamond"].samples, REGISTRY["gpqa_diamond"].max_tokens) == (8, 26000)
    assert (REGISTRY["livecodebench_v5"].samples, REGISTRY["livecodebench_v5"].max_tokens) == (8, 27000)
    with pytest.raises(InvalidInput, match="known: aime24"):
        get_benchmark("aime42")


def test_aime_loads_jsonl_and_parquet_folders(tmp_path):
    import pandas as pd

    folder = tmp_path / "aime24"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"id": 60, "problem": "Find x.", "answer": "033"}) + "\n")
    pd.DataFrame([{"id": 61, "problem": "Find y.", "answer": 5}]).to_parquet(folder / "b.parquet")
    problems = get_benchmark("aime24").load(read_records(folder, "aime24"))
    assert [p.id for p in problems] == ["60", "61"] and problems[1].target == "5"
    assert "Solve the following math problem step by step" in problems[0].prompt  # EvalScope's AIME template
    assert "Find x." in problems[0].prompt and "\\boxed{}" in problems[0].prompt
    assert problems[0].messages == ({"role": "user", "content": problems[0].prompt},)
    assert get_benchmark("aime24").score(problems[0], "\\boxed{33}").score == 1.0


def test_aime25_accepts_question_column_and_numbers_problems():
    problems = get_benchmark("aime25").load([{"question": "Q1", "answer": "70"}, {"question": "Q2", "answer": "8"}])
    assert [p.id for p in problems] == ["aime25-0", "aime25-1"]
    assert "Solve the following math problem step by step" in problems[0].prompt


def test_gpqa_choice_order_is_seeded_per_question():
    bench = get_benchmark("gpqa_diamond")
    first, again = bench.load([_gpqa_record()])[0], bench.load([_gpqa_record()])[0]
    assert first.prompt == again.prompt and first.target == again.target  # every arm sees the same order
    assert f"{first.target}) 4" in first.prompt and "'ANSWER: [LETTER]'" in first.prompt
    assert bench.score(first, f"Thinking...\nANSWER: {first.target}").score == 1.0
    targets = {bench.load([_gpqa_record(f"Question {i}?")])[0].target for i in range(20)}
    assert len(targets) > 1  # the correct letter is not always the same


def _lcb_record(qid, date, private):
    return {
        "question_id": qid,
        "question_content": "Add two numbers.",
        "contest_date": date,
        "starter_code": "",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": private,
        "metadata": "{}",
    }


def test_livecodebench_filters_the_r1_window_and_decodes_private_tests():
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps([{"input": "5 5\n", "output": "10\n"}])))).decode()
    records = [
        _lcb_record("early", "2024-07-31T00:00:00", "[]"),
        _lcb_record("inside", "2024-09-15T00:00:00", packed),
        _lcb_record("late", "2025-02-02T00:00:00", "[]"),
    ]
    bench = get_benchmark("livecodebench_v5")
    (problem,) = bench.load(records)
    assert problem.id == "inside" and problem.target == "2 tests"
    assert "Read the inputs from stdin" in problem.prompt and problem.prompt.startswith("### Question:")
    assert problem.system_prompt.startswith("You are an expert Python programmer")  # LiveCodeBench's own


GOOD = "```python\nimport sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n```"


def _lcb_problem():
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps([{"input": "5 5\n", "output": "10\n"}])))).decode()
    bench = get_benchmark("livecodebench_v5")
    return bench, bench.load([_lcb_record("inside", "2024-09-15T00:00:00", packed)])[0]


def test_livecodebench_program_that_passes_every_test_scores_one():
    bench, problem = _lcb_problem()
    result = bench.score(problem, "<think>```python\nprint(0)\n```</think>Here it is:\n" + GOOD)
    assert result.score == 1.0 and "a + b" in result.extracted


def test_livecodebench_program_that_fails_a_private_test_scores_zero():
    bench, problem = _lcb_problem()
    result = bench.score(problem, GOOD.replace("a + b", "a + b if a < 5 else 0"))  # passes 1 2, fails 5 5
    assert result.score == 0.0 and "Wrong answer" in result.reason


def test_livecodebench_program_that_never_ends_scores_zero():
    bench, problem = _lcb_problem()
    result = bench.score(problem, "```python\nwhile True:\n    pass\n```")
    assert result.score == 0.0 and result.reason == "Time Limit Exceeded"


def test_livecodebench_output_without_code_scores_zero():
    bench, problem = _lcb_problem()
    assert bench.score(problem, "no code").extracted is None and bench.score(problem, "no code").score == 0.0


def test_missing_folder_names_the_export_command(tmp_path):
    folder = benchmark_dir("gpqa_diamond", None, tmp_path / "data")
    assert folder == tmp_path / "data" / "gpqa_diamond"
    with pytest.raises(InvalidInput, match="harness data export gpqa_diamond"):
        read_records(folder, "gpqa_diamond")


def test_a_bad_line_in_benchmark_data_is_named_by_file_and_line(tmp_path):
    folder = tmp_path / "aime24"
    folder.mkdir()
    good = json.dumps({"id": 1, "problem": "1+1?", "answer": "2"})
    (folder / "a.jsonl").write_bytes(f"{good}\n\n".encode() + b'{"id": 2, "problem": "caf\xe9", "answer": "3"}\n')
    with pytest.raises(InvalidInput) as not_utf8:
        read_records(folder, "aime24")
    assert str(not_utf8.value).startswith(f"{folder / 'a.jsonl'}:3: not UTF-8 text (byte 0xe9 in: ")
    assert "re-export it with `harness data export`" in str(not_utf8.value)
    (folder / "a.jsonl").write_text(f"{good}\n{good[:-1]}\n")
    with pytest.raises(InvalidInput, match=rf"^{folder / 'a.jsonl'}:2: not a JSON record \("):
        read_records(folder, "aime24")


def test_record_without_required_column_is_named():
    with pytest.raises(InvalidInput, match="lacks field"):
        get_benchmark("gpqa_diamond").load([{"Question": "q"}])


def test_arith_is_generated_locally_and_scored_by_evalscopes_aime_scorer():
    bench = get_benchmark("arith")
    problems = bench.load(bench.generate(3))
    assert len(problems) == 3 and all(p.target.isdigit() for p in problems)
    assert problems[0].messages == ({"role": "user", "content": problems[0].prompt},)
    assert problems[0].prompt.endswith("have now?")  # the bare question, as in its SFT data
    assert bench.adapter == "aime24"
    assert bench.score(problems[0], f"The answer is \\boxed{{{problems[0].target}}}.").score == 1.0
    assert bench.score(problems[0], "The answer is \\boxed{99}.").score == 0.0
