"""What a benchmark run is: its knobs (environment variables) and the machine it ran on.

HARNESS_BENCH_ROUNDS   timed rounds per case                      (default 10)
HARNESS_BENCH_WARMUP   untimed warm-up rounds per case            (default 3)
HARNESS_BENCH_COMPILE  1: torch.compile every arm, BF16 included  (default 0: eager)
HARNESS_BENCH_LAYERS   decoder layers of the whole-model step     (default 4)
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass

import pytest
import torch

from harness.telemetry.manifest import cublas_version


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{name}={raw!r}: expected an integer >= {minimum}") from None
    if value < minimum:
        raise pytest.UsageError(f"{name}={raw!r}: expected an integer >= {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    rounds: int
    warmup_rounds: int
    compile: bool
    model_layers: int


def settings() -> Settings:
    """The run's knobs, read from the environment (a bad value stops pytest with a usage error)."""
    return Settings(
        rounds=_env_int("HARNESS_BENCH_ROUNDS", 10, 1),
        warmup_rounds=_env_int("HARNESS_BENCH_WARMUP", 3, 1),  # >= 1: the first call compiles/JITs kernels
        compile=os.environ.get("HARNESS_BENCH_COMPILE", "0") not in ("", "0", "false", "False"),
        model_layers=_env_int("HARNESS_BENCH_LAYERS", 4, 1),
    )


def missing_cuda_reason() -> str | None:
    """Why the benchmarks cannot run here (no CUDA GPU), or None; test modules skip themselves with it."""
    if torch.cuda.is_available():
        return None
    return f"benchmarks need a CUDA GPU; torch {torch.__version__} sees none here (CUDA build: {torch.version.cuda})"


def _module_version(name: str) -> str:
    try:
        return str(getattr(importlib.import_module(name), "__version__", "unknown"))
    except Exception as exc:  # a broken TE install raises OSError/RuntimeError, not only ImportError
        return f"not importable ({type(exc).__name__})"


@functools.cache
def machine() -> dict:
    """Device name and library versions, stored with every case so a number names what produced it (read once)."""
    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cublas": cublas_version(),  # the GEMMs' library: a preloaded newer one shows (scripts/stage_cublas.sh)
        "transformers": _module_version("transformers"),
        "transformer_engine": _module_version("transformer_engine"),
        "torchao": _module_version("torchao"),
    }
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        info.update(device=torch.cuda.get_device_name(), capability=f"{major}.{minor}")
    else:
        info.update(device="cpu", capability=None)
    return info
