"""Answer extraction and scoring: AIME-style boxed answers and GPQA letters.

The rules follow EvalScope 1.x (`evalscope/metrics/math_parser.py`, `utils/multi_choices.py`)
and InfiR2's eval scripts: the answer is read from the text after `</think>`, a math answer is
the last `\\boxed{...}` (nested braces allowed), a multiple-choice answer is the `ANSWER: X`
line. They are re-implemented here (pure functions, no sympy) so scoring runs in CI without
EvalScope, and so both arms of a comparison are always scored by the same code.
"""

from __future__ import annotations

import re
from fractions import Fraction

THINK_END = "</think>"


def strip_thinking(text: str) -> str:
    """The text after the last `</think>`; the whole text when the model did not think aloud."""
    return text.rsplit(THINK_END, 1)[-1] if THINK_END in text else text


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), matching nested braces; None if absent."""
    boxed, fbox = text.rfind("\\boxed"), text.rfind("\\fbox")
    if boxed < 0 and fbox < 0:
        return None
    rest = text[boxed + len("\\boxed") :] if boxed > fbox else text[fbox + len("\\fbox") :]
    if not rest.startswith("{"):
        # `\boxed 42` (no braces): EvalScope takes up to the next `$`.
        tail = rest.strip().split("$")[0].strip()
        return tail or None
    depth = 0
    for i, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[1:i]
    return None  # unbalanced: the model ran out of tokens inside the box


_LATEX_NOISE = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\%", ""),
    ("%", ""),
    ("\\$", ""),
    ("$", ""),
    ("dfrac", "frac"),
    ("tfrac", "frac"),
    ("^{\\circ}", ""),
    ("^\\circ", ""),
)


def normalize_math(answer: str) -> str:
    """Canonical text of a math answer: no LaTeX noise, `\\text{}` units, spaces or trailing dot."""
    text = answer.strip().rstrip(".")
    for old, new in _LATEX_NOISE:
        text = text.replace(old, new)
    text = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\mbox\{[^{}]*\}", "", text)
    text = re.sub(r"^[a-zA-Z]\s*=\s*", "", text)  # "x = 5" -> "5"
    text = text.replace(" ", "").replace("{,}", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text):  # 1,000 -> 1000
        text = text.replace(",", "")
    return text


def _as_number(text: str) -> Fraction | None:
    """A rational number from '7', '007', '-3.50', '3/4', '\\frac{3}{4}', '\\frac34'; else None."""
    text = text.strip()
    match = re.fullmatch(r"(-?)\\frac\{?(-?\d+)\}?\{?(-?\d+)\}?", text)
    if match:
        sign, num, den = match.groups()
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return -value if sign else value
    match = re.fullmatch(r"(-?\d+)/(-?\d+)", text)
    if match:
        return Fraction(int(match[1]), int(match[2])) if int(match[2]) else None
    if re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", text):
        return Fraction(text)
    return None


def math_equal(prediction: str | None, target: str) -> bool:
    """Whether two math answers are the same: equal numbers (007 == 7, 0.5 == 1/2) or equal text."""
    if prediction is None:
        return False
    pred, ref = normalize_math(prediction), normalize_math(target)
    if not pred:
        return False
    pred_num, ref_num = _as_number(pred), _as_number(ref)
    if pred_num is not None and ref_num is not None:
        return pred_num == ref_num
    return pred.lower() == ref.lower()


def extract_math_answer(output: str) -> str | None:
    """The boxed answer after `</think>`, normalised; None when the model gave no boxed answer."""
    boxed = last_boxed(strip_thinking(output))
    return None if boxed is None else normalize_math(boxed)


def score_math(output: str, target: str) -> tuple[str | None, float]:
    """(extracted answer, 1.0 or 0.0) for an AIME-style problem."""
    extracted = extract_math_answer(output)
    return extracted, float(math_equal(extracted, target))


_ANSWER_LINE = re.compile(r"(?im)^\s*\**ANSWER\**\s*[:：]\s*\**\s*\(?([A-Z])\)?\**\s*\.?\s*$")
_ANSWER_LOOSE = re.compile(r"(?i)ANSWER\s*[:：]\s*\**\s*\(?([A-Z])\b")


def extract_choice(output: str, letters: str = "ABCD") -> str | None:
    """The letter of an `ANSWER: X` line (last one wins), after `</think>`; None if absent.

    EvalScope first looks for a strict `ANSWER: X` line, then a looser `ANSWER: X` anywhere.
    Its last resort (the last capital letter in the text) is left out: it turns prose into
    answers, which adds noise to a parity comparison.
    """
    text = strip_thinking(output)
    for pattern in (_ANSWER_LINE, _ANSWER_LOOSE):
        found = [m.upper() for m in pattern.findall(text) if m.upper() in letters]
        if found:
            return found[-1]
    return None


def score_choice(output: str, target: str, letters: str = "ABCD") -> tuple[str | None, float]:
    """(extracted letter, 1.0 or 0.0) for a multiple-choice problem."""
    extracted = extract_choice(output, letters)
    return extracted, float(extracted is not None and extracted == target.strip().upper())


def extract_code(output: str) -> str | None:
    """The last fenced code block after `</think>` (LiveCodeBench's rule); None when there is none."""
    lines = strip_thinking(output).split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return None
    return "\n".join(lines[fences[-2] + 1 : fences[-1]])
