"""Forward + backward of a Linear, the Qwen2 MLP and one decoder layer, per shape and recipe."""

from __future__ import annotations

import pytest

from benchmarks.environment import missing_cuda_reason

if missing_cuda_reason():
    pytest.skip(missing_cuda_reason(), allow_module_level=True)

from benchmarks.cases import LAYER_CASES, RECIPES, SHAPES, backend_for, layer_step  # noqa: E402
from benchmarks.timing import measure  # noqa: E402


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.replace(":", "_"))
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_fwd_bwd(benchmark, bench_settings, device, case, shape_name, recipe):
    backend = backend_for(recipe, device)
    shape = SHAPES[shape_name]
    benchmark.group = f"{case} {shape_name}"
    timed = layer_step(case, shape, backend, device, bench_settings.compile)
    measure(benchmark, timed, bench_settings, case=case, recipe=recipe, **shape.describe())
