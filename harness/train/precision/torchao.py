"""`torchao:{tensorwise,rowwise,blockwise}`: PyTorch-native FP8 training from torchao (GPU only).

    tensorwise, rowwise: torchao.float8.convert_to_float8_training with
                         Float8LinearConfig.from_recipe_name(...)
    blockwise:           torchao.prototype.blockwise_fp8_training's Float8BlockwiseLinear
                         (1x128 / 128x128, DeepSeek-V3 style; prototype API). It supports only
                         bias-free linears with both dimensions divisible by 128, so Qwen2's
                         q/k/v projections (which have biases) stay in BF16 under this recipe.

    +swiglu8:            tensorwise or rowwise, and the SwiGLU inputs (gate, up) kept for backward
                         in FP8 as well (swiglu8.py; DeepSeek-V3's activation caching): the
                         forward is unchanged, the peak memory lower.

Only decoder-layer linears are converted (lm_head and embeddings stay high precision). Under
FSDP2 (several processes), tensorwise enables torchao's FP8 weight all-gather.
torchao is imported only when the backend is used.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from harness.errors import InvalidInput
from harness.recipes import Recipe
from harness.train.distributed import process_count
from harness.train.precision.base import PrecisionBackend, bf16_autocast, decoder_linears, require_gpu
from harness.train.precision.swiglu8 import use_swiglu_saved_fp8


class TorchAOBackend(PrecisionBackend):
    emulated = False

    def __init__(self, recipe: Recipe):
        self.recipe, self.name = recipe, recipe.name
        self.kind, self.swiglu8 = recipe.scaling, recipe.swiglu8

    def check_available(self, device: torch.device) -> None:
        require_gpu(self.recipe, device, "torchao")
        try:
            if self.kind == "blockwise":
                import torchao.prototype.blockwise_fp8_training.linear  # noqa: F401
            else:
                import torchao.float8  # noqa: F401
        except ImportError as exc:
            raise InvalidInput(
                f"{self.name} needs torchao (0.18 or newer) importable ({exc}); pip install torchao"
            ) from None

    def convert(self, model: nn.Module) -> nn.Module:
        if self.kind == "blockwise":
            from torchao.prototype.blockwise_fp8_training.linear import Float8BlockwiseLinear

            def keep(m):
                return m.bias is None and m.in_features % 128 == 0 and m.out_features % 128 == 0

            for parent, attr, linear in list(decoder_linears(model, keep)):
                setattr(parent, attr, Float8BlockwiseLinear.from_float(linear))
            return model
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        decoder = {
            id(m) for _, _, m in decoder_linears(model, lambda m: m.in_features % 16 == 0 and m.out_features % 16 == 0)
        }
        config = Float8LinearConfig.from_recipe_name(self.kind)
        if self.kind == "tensorwise" and _sharded():
            # FSDP2 then all-gathers the weights already cast to FP8 (half the bytes of BF16),
            # with the amax all-reduced so every rank uses the scale of the whole weight. torchao
            # supports this for tensorwise weight scaling only, so rowwise gathers BF16.
            config = dataclasses.replace(config, enable_fsdp_float8_all_gather=True)
        convert_to_float8_training(
            model,
            config=config,
            module_filter_fn=lambda module, fqn: id(module) in decoder,
        )
        return use_swiglu_saved_fp8(model, self.name) if self.swiglu8 else model

    def autocast(self, device: torch.device):
        return bf16_autocast(device)


def _sharded() -> bool:
    """True when the trainer will shard this model with FSDP2 (several processes; see distributed.py)."""
    return process_count() > 1


def make(recipe: Recipe) -> TorchAOBackend:
    return TorchAOBackend(recipe)
