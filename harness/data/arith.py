"""Arithmetic word problems with integer answers, in AIME's schema (problem, answer).

One generator serves both the SFT chat set (`builtin:arith-sft`) and the local benchmark
(`arith`), so a model trained on the former can score above zero on the latter. Train and
test problems come from disjoint seeds.
"""

from __future__ import annotations

import random

NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana")
ITEMS = ("apples", "books", "coins", "pens", "shells", "stamps")
TRAIN_SEED = 1234
TEST_SEED = 98765


def problem(rng: random.Random) -> dict:
    """One problem: 'Ana has 3 apples and gets 4 more. How many apples does Ana have now?'"""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        text = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        answer = a + b
    else:
        a, b = max(a, b), min(a, b)
        text = f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have now?"
        answer = a - b
    return {"problem": text, "answer": str(answer)}


def problems(n: int, split: str = "test") -> list[dict]:
    """n problems with ids; 'train' and 'test' use disjoint seeds."""
    rng = random.Random(TRAIN_SEED if split == "train" else TEST_SEED)
    return [{"id": f"arith-{split}-{i}", **problem(rng)} for i in range(n)]


def solution(item: dict) -> str:
    """The assistant turn the SFT set teaches: short reasoning then a boxed answer."""
    return f"The answer is \\boxed{{{item['answer']}}}."


def sft_records(n: int) -> list[dict]:
    """Chat records in the `messages` schema used by SFT data sets."""
    return [
        {"messages": [{"role": "user", "content": item["problem"]}, {"role": "assistant", "content": solution(item)}]}
        for item in problems(n, "train")
    ]
