"""Shared fixtures of the benchmark suite: settings, the CUDA device, memory release between cases."""

from __future__ import annotations

import gc

import pytest
import torch

from benchmarks.environment import Settings, machine, missing_cuda_reason, settings


@pytest.fixture(scope="session")
def bench_settings() -> Settings:
    return settings()


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture(autouse=True)
def _release_gpu_memory():
    """Free the previous case's weights, activations and compiled graphs, so peaks do not add up."""
    yield
    if torch.cuda.is_available():
        torch._dynamo.reset()
        gc.collect()
        torch.cuda.empty_cache()


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Name the GPU and the torch / Transformer Engine / torchao versions in the saved JSON's machine_info."""
    machine_info["gpu"] = dict(machine())


def pytest_sessionfinish(session, exitstatus) -> None:
    """Without a GPU every module skips at collection; report that as success, not pytest's exit 5 (nothing collected)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and missing_cuda_reason():
        session.exitstatus = pytest.ExitCode.OK
