"""manifest.json: what ran, where, with which software, and how it ended.

Versions come from installed distribution metadata (no heavy imports), cuBLAS's from the library
this process loaded (a preloaded newer one is what the GEMMs call, whatever pip installed); the
harness git sha from `git rev-parse HEAD` in the package's checkout (None outside a git repository).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import harness

# distribution names to try for each reported package (first installed one wins)
_DISTRIBUTIONS = {
    "torch": ("torch",),
    "transformer_engine": ("transformer-engine", "transformer_engine", "transformer-engine-torch"),
    "torchao": ("torchao",),
    "transformers": ("transformers",),
    "nvidia_ml_py": ("nvidia-ml-py",),
}


def utc_now() -> str:
    """ISO 8601 UTC timestamp with seconds, e.g. 2026-11-25T10:51:41Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def git_sha(where: Path | None = None) -> str | None:
    """The commit of the code that runs: HARNESS_GIT_SHA when set, else HEAD of the git checkout
    holding `where` (default: the harness package), else None.

    The variable wins because a copy of the code (a `git archive` shipped to an offline GPU
    machine) may sit inside another, older checkout whose HEAD is not the code that runs (seen on
    the GPU machine: runs recorded a stale commit).
    """
    if os.environ.get("HARNESS_GIT_SHA"):
        return os.environ["HARNESS_GIT_SHA"]
    where = where or Path(harness.__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
        sha = done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return sha or None


def driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, no GPU: the manifest says None
        return None
    return version.decode() if isinstance(version, bytes) else str(version)


def dotted_cublas_version(number: int) -> str:
    """cublasLtGetVersion()'s number as a version: 130100 -> "13.1.0", 131000 -> "13.10.0"."""
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def cublas_version(libraries=None) -> str | None:
    """The cuBLASLt that this process's GEMMs bind to (TE's FP8 GEMMs and torch's), None without one.

    Asked of the process's global symbols first, so a library preloaded with LD_PRELOAD (a newer
    cuBLAS than torch's wheel pins, scripts/stage_cublas.sh) is the one reported, then of each
    loaded libcublasLt. `libraries` are ctypes libraries to ask instead (the tests' stand-ins); a
    CPU build of torch loads no cuBLAS.
    """
    for library in libraries if libraries is not None else _process_libraries("libcublasLt.so"):
        get = getattr(library, "cublasLtGetVersion", None)
        if get is not None:
            get.restype = ctypes.c_size_t
            return dotted_cublas_version(int(get()))
    return None


def _process_libraries(name: str) -> Iterator:
    """The process's global symbol scope, then each loaded shared object whose file name starts with `name`."""
    yield ctypes.CDLL(None)
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:  # not Linux
        return
    paths = (line.split()[-1] for line in lines if len(line.split()) >= 6)
    for path in dict.fromkeys(p for p in paths if Path(p).name.startswith(name)):
        with contextlib.suppress(OSError):
            yield ctypes.CDLL(path)


def versions() -> dict[str, str | None]:
    """python, torch, cuda, cublas, driver, transformer_engine, torchao, transformers, harness and friends."""
    import torch

    found = {"python": platform.python_version(), "cuda": torch.version.cuda, "driver": driver_version()}
    found["cublas"] = cublas_version()
    found.update({key: package_version(*names) for key, names in _DISTRIBUTIONS.items()})
    found["harness"] = harness.__version__
    return found


def gpu_info(device) -> dict:
    """Model of the GPU this process trains on and how many this host shows; None on CPU."""
    import torch

    if getattr(device, "type", None) != "cuda" or not torch.cuda.is_available():
        return {"model": None, "count": 0}
    return {"model": torch.cuda.get_device_name(device), "count": torch.cuda.device_count()}


def build_manifest(spec, *, device, world_size: int, emulated: bool, nvml: dict) -> dict:
    """The manifest written when a run starts (status running); finish() adds ended_at and status."""
    return {
        "run_id": spec.run_id,
        "suite": spec.suite,
        "stage": spec.stage_name,
        "arm": spec.arm,
        "recipe": spec.recipe,
        "seed": spec.seed,
        "fingerprint": spec.fingerprint,
        "emulated": emulated,
        "status": "running",
        "reason": None,
        "started_at": utc_now(),
        "ended_at": None,
        "versions": versions(),
        "git_sha": git_sha(),
        "device": str(device),
        "gpu": gpu_info(device),
        "world_size": world_size,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "nvml": nvml,
    }
