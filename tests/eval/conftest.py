"""Fixtures for eval tests (helpers live in evalkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalkit import FAKE_VLLM_COMMAND, build_tiny_checkpoint, train_on_arith


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "final")


@pytest.fixture(scope="session")
def arith_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny model after 500 steps on the arith SFT chats (~12 s on 2 CPU cores)."""
    return train_on_arith(tiny_checkpoint, tmp_path_factory.mktemp("ckpt") / "arith", steps=500)


@pytest.fixture
def fake_vllm_command() -> list[str]:
    return list(FAKE_VLLM_COMMAND)
