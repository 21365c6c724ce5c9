"""Names of the precision recipes and where each backend lives.

Kept free of heavy imports so `harness validate` can check recipe names without torch.
Each value is "module:attribute" of a factory `make(recipe_name) -> PrecisionBackend`.
"""

from __future__ import annotations

import importlib

RECIPES: dict[str, str] = {
    "bf16": "harness.train.precision.bf16:make",
    "te:delayed": "harness.train.precision.te:make",
    "te:current": "harness.train.precision.te:make",
    "te:blockwise": "harness.train.precision.te:make",
    "te:mxfp8": "harness.train.precision.te:make",
    "torchao:tensorwise": "harness.train.precision.torchao:make",
    "torchao:rowwise": "harness.train.precision.torchao:make",
    "torchao:blockwise": "harness.train.precision.torchao:make",
    # +swiglu8: the SwiGLU inputs kept for backward in FP8 as well (swiglu8.py); forward unchanged.
    "torchao:tensorwise+swiglu8": "harness.train.precision.torchao:make",
    "torchao:rowwise+swiglu8": "harness.train.precision.torchao:make",
    "emulated:tensor": "harness.train.precision.emulated:make",
    "emulated:row": "harness.train.precision.emulated:make",
    "emulated:block": "harness.train.precision.emulated:make",
    "emulated:tensor+swiglu8": "harness.train.precision.emulated:make",
    "emulated:row+swiglu8": "harness.train.precision.emulated:make",
    "emulated:block+swiglu8": "harness.train.precision.emulated:make",
}


def get_backend(recipe: str):
    """Instantiate the backend for a recipe name (imports its module on first use)."""
    module_name, attr = RECIPES[recipe].split(":")
    return getattr(importlib.import_module(module_name), attr)(recipe)


def is_emulated(recipe: str) -> bool:
    return recipe.startswith("emulated:")
