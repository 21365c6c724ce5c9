"""Outputs are scored by EvalScope's own adapters, after the last `</think>`: AIME answers, GPQA letters."""

from __future__ import annotations

import pytest

from harness.eval.benchmarks import get_benchmark


def _aime(output: str, answer: str, bench: str = "aime24"):
    benchmark = get_benchmark(bench)
    (problem,) = benchmark.load([{"problem": "Find n.", "answer": answer}])
    return benchmark.score(problem, output)


@pytest.mark.parametrize(
    ("output", "answer", "score"),
    [
        ("So the answer is \\boxed{33}.", "33", 1.0),
        ("The final answer is $\\boxed{33}$.", "33", 1.0),
        ("\\boxed{033}", "33", 1.0),  # leading zeros: AIME answers are integers 0..999
        ("\\boxed{7}", "007", 1.0),
        ("\\boxed{1,000}", "1000", 1.0),
        ("\\boxed{34}", "33", 0.0),
        ("\\boxed{\\frac{66}{2}}", "33", 0.0),  # EvalScope's AIME rule: an integer literal, not an expression
        ("\\boxed{\\dfrac{1}{2}}", "33", 0.0),
        ("\\boxed{3 3}", "33", 0.0),
        ("the box never closes \\boxed{33", "33", 0.0),
        ("", "33", 0.0),
    ],
)
def test_aime_answers_are_scored_by_evalscope(output, answer, score):
    assert _aime(output, answer).score == score


def test_aime_answer_is_read_after_the_last_think_tag():
    assert _aime("<think>maybe \\boxed{5}</think>so \\boxed{33}", "33").score == 1.0
    assert _aime("<think>\\boxed{33}</think>so \\boxed{5}", "33").score == 0.0
    assert _aime("a</think>\\boxed{33}</think>\\boxed{5}", "33").extracted == "5"


def test_aime25_uses_the_same_scorer():
    assert _aime("\\boxed{070}", "70", "aime25").score == 1.0


def test_scored_answer_says_what_was_extracted_and_why():
    wrong = _aime("\\boxed{\\frac{66}{2}}", "33")
    assert wrong.extracted == "\\frac{66}{2}" and wrong.reason == "integer_literal_required"
    assert _aime("\\boxed{33}", "33").reason == "matched"


def test_a_reference_evalscope_cannot_use_is_excluded_and_scored_zero():
    result = _aime("\\boxed{1}", "1/2")  # not an AIME answer
    assert (result.score, result.status) == (0.0, "excluded") and "invalid_integer_reference" in result.reason


def _gpqa():
    record = {
        "Question": "Which gas is most abundant in air?",
        "Correct Answer": "Nitrogen",
        "Incorrect Answer 1": "Oxygen",
        "Incorrect Answer 2": "Argon",
        "Incorrect Answer 3": "Carbon dioxide",
    }
    benchmark = get_benchmark("gpqa_diamond")
    (problem,) = benchmark.load([record])
    wrong = next(letter for letter in "ABCD" if letter != problem.target)
    return benchmark, problem, wrong


@pytest.mark.parametrize(
    "template", ["ANSWER: {}", "Reasoning...\nANSWER: ({})", "**ANSWER: {}**", "ANSWER: {}\n", "The answer is {}"]
)
def test_gpqa_letter_formats_are_read(template):
    benchmark, problem, _ = _gpqa()
    result = benchmark.score(problem, template.format(problem.target))
    assert (result.extracted, result.score) == (problem.target, 1.0)


def test_gpqa_wrong_or_missing_letter_scores_zero():
    benchmark, problem, wrong = _gpqa()
    assert benchmark.score(problem, f"ANSWER: {wrong}").score == 0.0
    assert benchmark.score(problem, "I am not sure.").score == 0.0


def test_gpqa_letter_is_read_after_the_last_think_tag():
    benchmark, problem, wrong = _gpqa()
    assert benchmark.score(problem, f"<think>ANSWER: {wrong}</think>ANSWER: {problem.target}").score == 1.0
    assert benchmark.score(problem, f"<think>ANSWER: {problem.target}</think>ANSWER: {wrong}").score == 0.0
