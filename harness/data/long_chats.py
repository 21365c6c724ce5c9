"""`builtin:long-chats`: SFT conversations whose lengths have the long tail of reasoning SFT sets.

Reasoning SFT data (InfiAlign-SFT, OpenMathInstruct-2, ARPO-SFT-54K) averages a few thousand
tokens per conversation with a tail to tens of thousands; this set copies that shape so packing
and padding can be measured without a download. Lengths are drawn from a log-normal law with a
median of 2,000 and a 99th percentile of 24,000 tokens (sigma = ln(12) / 2.326), cut at 30,000;
each conversation asks about a stretch of the Python standard library's sources (the user turn,
a quarter of its length) and answers with the stretch that follows (three quarters). Characters
are converted to tokens at CHARS_PER_TOKEN, what the Qwen2.5 tokenizer gives on this code, so the
tokenised lengths follow the law only approximately: summary figures say what was measured.
Deterministic (numpy seed 0), offline.
"""

from __future__ import annotations

import math

import numpy as np

from harness.data.stdlib import stdlib_records

MEDIAN_TOKENS = 2000
P99_TOKENS = 24000
MAX_TOKENS = 30000
MIN_TOKENS = 64
CHARS_PER_TOKEN = 4.25  # Qwen2.5's tokenizer on the stdlib sources (measured on 300 conversations)
SIGMA = math.log(P99_TOKENS / MEDIAN_TOKENS) / 2.326  # z of the 99th percentile


def lengths(n: int, seed: int = 0) -> np.ndarray:
    """Target token lengths of n conversations."""
    rng = np.random.default_rng(seed)
    drawn = rng.lognormal(math.log(MEDIAN_TOKENS), SIGMA, size=n)
    return np.clip(drawn, MIN_TOKENS, MAX_TOKENS).astype(int)


def records(n: int = 4096, seed: int = 0) -> list[dict]:
    """n conversations {"messages": [user, assistant]} of long-tailed lengths."""
    corpus = "\n".join(r["text"] for r in stdlib_records())
    rng = np.random.default_rng(seed + 1)
    out = []
    for tokens in lengths(n, seed):
        chars = int(tokens * CHARS_PER_TOKEN)
        start = int(rng.integers(0, max(1, len(corpus) - chars)))
        text = corpus[start : start + chars]
        cut = len(text) // 4
        question = f"Explain what this code does and continue it:\n\n{text[:cut]}"
        out.append({"messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "content": text[cut:] or "pass"}]})  # fmt: skip
    return out
