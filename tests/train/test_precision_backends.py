import pytest
import torch

from harness.errors import InvalidInput
from harness.train.precision.base import PrecisionBackend
from harness.train.precision.registry import RECIPES, get_backend, is_emulated

CPU = torch.device("cpu")


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_registered_recipe_builds_a_backend_without_importing_gpu_libraries(recipe):
    backend = get_backend(recipe)
    assert isinstance(backend, PrecisionBackend)
    assert backend.name == recipe and backend.emulated == is_emulated(recipe)


@pytest.mark.parametrize(
    "recipe, fallback",
    [("te:delayed", "emulated:tensor"), ("te:current", "emulated:tensor"), ("te:blockwise", "emulated:block"),
     ("te:mxfp8", "emulated:block"), ("torchao:tensorwise", "emulated:tensor"), ("torchao:rowwise", "emulated:row"),
     ("torchao:blockwise", "emulated:block"), ("deepgemm:blockwise", "emulated:block")],
)  # fmt: skip
def test_gpu_recipes_refuse_on_cpu_with_what_is_missing_and_the_emulated_fallback(recipe, fallback):
    with pytest.raises(InvalidInput) as err:
        get_backend(recipe).check_available(CPU)
    message = str(err.value)
    assert message.startswith(f"{recipe} needs an NVIDIA GPU with FP8 support")
    assert "none here" in message and f"use {fallback} on CPU" in message


def test_mxfp8_names_blackwell_as_the_requirement():
    with pytest.raises(InvalidInput, match=r"Blackwell \(compute capability 10.0\)"):
        get_backend("te:mxfp8").check_available(CPU)


@pytest.mark.parametrize("recipe", ["bf16", "emulated:tensor", "emulated:row", "emulated:block"])
def test_cpu_recipes_are_available_and_autocast_to_bf16(recipe):
    backend = get_backend(recipe)
    backend.check_available(CPU)
    with backend.autocast(CPU):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
