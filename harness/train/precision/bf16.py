"""`bf16`: the baseline arm. FP32 master weights, BF16 autocast for compute (every arm shares this)."""

from __future__ import annotations

import torch
from torch import nn

from harness.recipes import RECIPES, Recipe
from harness.train.precision.base import PrecisionBackend, bf16_autocast


class BF16Backend(PrecisionBackend):
    emulated = False

    def __init__(self, recipe: Recipe = RECIPES["bf16"]):
        self.recipe, self.name = recipe, recipe.name

    def check_available(self, device: torch.device) -> None:
        """BF16 autocast runs on CPU and CUDA alike."""

    def convert(self, model: nn.Module) -> nn.Module:
        return model

    def autocast(self, device: torch.device):
        return bf16_autocast(device)


def make(recipe: Recipe) -> BF16Backend:
    return BF16Backend(recipe)
