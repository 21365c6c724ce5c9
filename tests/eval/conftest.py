"""Fixtures for eval tests (helpers live in evalkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalkit import FAKE_VLLM_COMMAND, build_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "final")


@pytest.fixture
def fake_vllm_command() -> list[str]:
    return list(FAKE_VLLM_COMMAND)
