import pytest

from harness.data.builtin import builtin_records, is_builtin
from harness.data.stdlib import stdlib_files, stdlib_records
from harness.errors import InvalidInput


def test_stdlib_corpus_is_real_python_source_in_a_stable_order():
    files = stdlib_files()
    names = [f.name for f in files]
    assert len(files) > 300 and "__future__.py" in names
    assert files == stdlib_files()  # same order every call
    assert not any("test" in p.parts or "tests" in p.parts for p in files)
    records = stdlib_records(limit=50)
    assert len(records) == 50 and all(r["text"].strip() for r in records)
    assert any("def " in r["text"] for r in records)


def test_builtin_registry_serves_stdlib_and_arithmetic_chats():
    assert is_builtin("builtin:stdlib") and not is_builtin("data/x.jsonl")
    assert builtin_records("builtin:stdlib", 3) == stdlib_records(3)
    chats = builtin_records("builtin:arith-sft", 5)
    assert len(chats) == 5
    assert [m["role"] for m in chats[0]["messages"]] == ["user", "assistant"]
    assert "\\boxed{" in chats[0]["messages"][1]["content"]


def test_unknown_builtin_names_the_known_ones():
    with pytest.raises(InvalidInput, match=r"builtin:nope.*known: builtin:stdlib, builtin:arith-sft"):
        builtin_records("builtin:nope")


def test_long_chats_have_the_long_tail_of_reasoning_sft_sets_and_are_deterministic():
    import numpy as np

    from harness.data import long_chats

    drawn = long_chats.lengths(20000)
    assert abs(np.median(drawn) - 2000) < 100 and abs(np.percentile(drawn, 99) - 24000) < 2500
    assert drawn.min() >= long_chats.MIN_TOKENS and drawn.max() <= long_chats.MAX_TOKENS
    first = builtin_records("builtin:long-chats", 5)
    assert first == builtin_records("builtin:long-chats", 5)
    assert [m["role"] for m in first[0]["messages"]] == ["user", "assistant"]
    sizes = [sum(len(m["content"]) for m in r["messages"]) for r in first]
    expected = long_chats.lengths(5) * long_chats.CHARS_PER_TOKEN
    assert all(abs(size - want) < 100 for size, want in zip(sizes, expected, strict=True))
