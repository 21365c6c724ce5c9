"""Fixtures for trainer tests (helpers live in trainkit.py)."""

from __future__ import annotations

import os

import pytest
from trainkit import write_corpus


@pytest.fixture(scope="session", autouse=True)
def harness_cache(tmp_path_factory):
    """Tokenizers train/convert once per session into a private cache, never into ~/.cache."""
    old = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("harness-cache"))
    yield os.environ["HARNESS_CACHE"]
    if old is None:
        os.environ.pop("HARNESS_CACHE", None)
    else:
        os.environ["HARNESS_CACHE"] = old


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("data") / "corpus.jsonl")


@pytest.fixture(scope="session")
def tiny_tokenizer(harness_cache):
    from harness.suite import ModelConfig
    from harness.train.tokenizer import load_tokenizer

    return load_tokenizer(ModelConfig(preset="tiny", tokenizer="builtin:tiny-bpe"))
