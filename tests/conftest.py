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


@pytest.fixture(scope="session", autouse=True)
def wandb_offline(tmp_path_factory):
    """Weights & Biases stays on this machine in every test, child processes included: offline
    mode, and its settings, cache and artifact staging in a temp folder, never ~/.config or wandb.ai."""
    root = tmp_path_factory.mktemp("wandb-home")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_CODE": "true"}
    env |= {name: str(root / name.lower()) for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR",
                                                        "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")}  # fmt: skip
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield root
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
