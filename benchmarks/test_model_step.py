"""One whole training step (forward, loss, backward, clip, AdamW) of the Qwen2.5-1.5B shape, reduced depth."""

from __future__ import annotations

import pytest

from benchmarks.environment import missing_cuda_reason

if missing_cuda_reason():
    pytest.skip(missing_cuda_reason(), allow_module_level=True)

from benchmarks.cases import RECIPES, SHAPES, backend_for, model_step  # noqa: E402
from benchmarks.timing import measure  # noqa: E402


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.replace(":", "_"))
def test_model_step(benchmark, bench_settings, device, recipe):
    backend = backend_for(recipe, device)
    shape = SHAPES["qwen2.5-1.5b"]
    layers = bench_settings.model_layers
    benchmark.group = f"model_step {shape.preset} {layers} layers"
    timed = model_step(shape, backend, device, layers, bench_settings.compile)
    measure(benchmark, timed, bench_settings, case="model_step", recipe=recipe, num_layers=layers, **shape.describe())
