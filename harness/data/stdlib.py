"""`builtin:stdlib`: a real text corpus made of the installed Python standard library's sources.

Offline and always present, so CPT and the built-in tokenizer need no download. Files come in
sorted order of their path relative to the standard library root, so every machine with the same
Python version sees the same corpus. Test suites are left out (large, repetitive, and full of
deliberately broken code).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

SKIP_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(limit: int | None = None) -> list[Path]:
    """Standard library .py files in a deterministic order, optionally only the first `limit`."""
    root = stdlib_root()
    files = sorted(
        (p for p in root.rglob("*.py") if not SKIP_PARTS.intersection(p.relative_to(root).parts)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    return files[:limit] if limit is not None else files


def stdlib_records(limit: int | None = None) -> list[dict]:
    """One record {"text": source} per file; undecodable bytes are replaced, empty files skipped."""
    records = []
    for path in stdlib_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            records.append({"text": text})
        if limit is not None and len(records) >= limit:
            break
    return records
