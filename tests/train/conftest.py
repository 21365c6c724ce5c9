"""Fixtures for trainer tests (helpers live in trainkit.py)."""

from __future__ import annotations

import pytest
from trainkit import write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("data") / "corpus.jsonl")


@pytest.fixture(scope="session")
def tiny_tokenizer(harness_cache):
    from harness.suite import ModelConfig
    from harness.train.tokenizer import load_tokenizer

    return load_tokenizer(ModelConfig(preset="tiny", tokenizer="builtin:tiny-bpe"))
