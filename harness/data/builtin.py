"""Registry of built-in data sets, addressed as "builtin:NAME" in suite files."""

from __future__ import annotations

from collections.abc import Callable

from harness.data import arith, long_chats, stdlib
from harness.errors import InvalidInput

ARITH_SFT_SIZE = 4096  # records generated before max_samples is applied

# name -> function(limit) -> records; each is deterministic and needs no network.
BUILTINS: dict[str, Callable[[int | None], list[dict]]] = {
    "stdlib": stdlib.stdlib_records,
    "arith-sft": lambda limit: arith.sft_records(limit or ARITH_SFT_SIZE),
    # long-tailed SFT conversations (median ~2k, p99 ~24k tokens) for packing measurements
    "long-chats": lambda limit: long_chats.records(limit or 4096),
}

PREFIX = "builtin:"


def is_builtin(path: str) -> bool:
    return path.startswith(PREFIX)


def builtin_records(path: str, limit: int | None = None) -> list[dict]:
    """Records of a built-in data set such as "builtin:stdlib"; `limit` keeps the first N."""
    name = path.removeprefix(PREFIX)
    if name not in BUILTINS:
        raise InvalidInput(
            f"data.path: unknown built-in data set {path!r}; known: {', '.join(PREFIX + n for n in BUILTINS)}"
        )
    return BUILTINS[name](limit)
