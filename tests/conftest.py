"""Fixtures for the whole test tree."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def harness_cache(tmp_path_factory):
    """Tokenizers train/convert once per session into a private cache (child processes inherit
    it through the environment), never into the user's ~/.cache."""
    old = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("harness-cache"))
    yield os.environ["HARNESS_CACHE"]
    if old is None:
        os.environ.pop("HARNESS_CACHE", None)
    else:
        os.environ["HARNESS_CACHE"] = old
