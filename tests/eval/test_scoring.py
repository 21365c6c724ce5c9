"""Answer extraction and scoring on hand-written model outputs."""

from __future__ import annotations

import pytest

from harness.eval.scoring import extract_choice, extract_code, last_boxed, math_equal, score_choice, score_math


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    [
        ("So the answer is \\boxed{204}.", "204", 1.0),
        ("First \\boxed{12}, on reflection \\boxed{21}", "21", 1.0),  # last box wins
        ("First \\boxed{21}, on reflection \\boxed{12}", "21", 0.0),
        ("\\boxed{007}", "7", 1.0),  # leading zeros
        ("\\boxed{7}", "007", 1.0),
        ("\\boxed{\\frac{1}{2}}", "1/2", 1.0),  # nested braces, fractions
        ("\\boxed{\\dfrac{3}{4}}", "0.75", 1.0),
        ("\\boxed{\\frac34}", "\\frac{3}{4}", 1.0),
        ("\\boxed{x = 5}", "5", 1.0),
        ("\\boxed{1,000}", "1000", 1.0),
        ("\\boxed{100^\\circ}", "100", 1.0),
        ("\\boxed{\\text{(B)}}", "(B)", 1.0),
        ("<think>maybe \\boxed{3}</think>The answer is \\boxed{4}", "4", 1.0),
        ("<think>I think \\boxed{4}</think>so it is 5", "4", 0.0),  # only the part after </think> counts
        ("The answer is 42.", "42", 0.0),  # no box: no answer
        ("\\boxed{12", "12", 0.0),  # truncated inside the box
    ],
)
def test_math_scoring_follows_aime_rules(output, target, expected):
    assert score_math(output, target)[1] == expected


def test_last_boxed_keeps_nested_braces():
    assert last_boxed("a \\boxed{\\frac{a}{b^{2}}} b") == "\\frac{a}{b^{2}}"
    assert last_boxed("no box here") is None


def test_math_equal_distinguishes_different_numbers():
    assert not math_equal("70", "7")
    assert not math_equal("", "0")
    assert math_equal("-3", "-003")


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("Reasoning...\nANSWER: C", "C"),
        ("ANSWER: B\nwait, no.\nANSWER: D", "D"),
        ("**ANSWER: A**", "A"),
        ("answer: (b).", "B"),
        ("The final ANSWER: C because ...", "C"),
        ("<think>ANSWER: A</think>\nANSWER: B", "B"),
        ("I pick option C.", None),  # no ANSWER line: no guess from prose
        ("ANSWER: E", None),  # not one of the four letters
    ],
)
def test_gpqa_letter_extraction(output, letter):
    assert extract_choice(output) == letter


def test_gpqa_scoring_compares_letters():
    assert score_choice("ANSWER: C", "C") == ("C", 1.0)
    assert score_choice("ANSWER: A", "C") == ("A", 0.0)
    assert score_choice("no answer", "C") == (None, 0.0)


def test_code_extraction_takes_last_fenced_block_after_thinking():
    output = "<think>```python\nprint(0)\n```</think>\nHere:\n```python\nprint(1)\n```\nand\n```python\nprint(2)\n```"
    assert extract_code(output) == "print(2)"
    assert extract_code("no code") is None
