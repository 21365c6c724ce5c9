"""Fixtures for fault and bad-input tests (helpers live in relkit.py): a private tokenizer cache, a
corpus and one uninterrupted reference run to compare resumed runs against."""

from __future__ import annotations

from pathlib import Path

import pytest
from relkit import write_corpus, write_suite


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("data") / "corpus.jsonl")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, corpus):
    """An uninterrupted `harness train` of cpt-fp8-s0 (in this process): the losses a resumed run must equal."""
    from harness.cli import main
    from harness.store import RunDir

    folder = tmp_path_factory.mktemp("reference")
    suite = write_suite(folder, corpus)
    assert main(["train", str(suite), "--run", "cpt-fp8-s0", "--runs-dir", str(folder / "runs"), "--quiet"]) == 0
    return RunDir(folder / "runs" / "rel" / "cpt-fp8-s0")
