"""`te:{delayed,current,blockwise,mxfp8}`: NVIDIA Transformer Engine FP8 (real kernels, GPU only).

    te:delayed   DelayedScaling        per-tensor scales from an amax history (HYBRID: E4M3 fwd, E5M2 bwd)
    te:current   Float8CurrentScaling  per-tensor scales from the current tensor
    te:blockwise Float8BlockScaling    1x128 activation/gradient, 128x128 weight blocks, E4M3,
                                       power-of-2 scales (DeepSeek-V3; what InfiR2 trained with)
    te:mxfp8     MXFP8BlockScaling     32-element microscaling blocks; Blackwell only

Every Qwen2 decoder layer becomes a FusedQwen2DecoderLayer (te_layer.py: te.LayerNormLinear for
norm + q/k/v, te.Linear for o_proj, te.LayerNormMLP for norm + SwiGLU MLP) with the same weights;
any other decoder-layer nn.Linear becomes a te.Linear. The forward runs under BF16 autocast plus
TE's FP8 autocast. transformer_engine is imported only when this backend is
used, and the backend refuses clearly where it cannot run.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from harness.errors import InvalidInput
from harness.recipes import Recipe
from harness.train.precision.base import PrecisionBackend, bf16_autocast, decoder_linears, require_gpu
from harness.train.precision.te_layer import FusedQwen2DecoderLayer, can_fuse, unfuse_state


def _te():
    try:
        import transformer_engine.pytorch as te
    except ImportError as exc:
        raise InvalidInput(f"te:* recipes need transformer_engine[pytorch] 2.x importable ({exc})") from None
    return te


def _fp8_recipe(kind: str):
    from transformer_engine.common import recipe as r

    if kind == "delayed":
        return r.DelayedScaling(fp8_format=r.Format.HYBRID, amax_history_len=1024, amax_compute_algo="max")
    if kind == "current":
        return r.Float8CurrentScaling(fp8_format=r.Format.HYBRID)
    if kind == "blockwise":
        return r.Float8BlockScaling(fp8_format=r.Format.E4M3)
    return r.MXFP8BlockScaling(fp8_format=r.Format.E4M3)


class TEBackend(PrecisionBackend):
    emulated = False

    def __init__(self, recipe: Recipe):
        self.recipe, self.name = recipe, recipe.name
        self.kind = recipe.scaling
        self._recipe = None

    def check_available(self, device: torch.device) -> None:
        require_gpu(self.recipe, device, "transformer_engine")
        te = _te()
        # TE's own probes know about driver/CUDA requirements (e.g. blockwise needs CUDA 12.9+).
        probes = {"blockwise": "check_fp8_block_scaling_support", "mxfp8": "check_mxfp8_support"}
        for module in (getattr(te, "fp8", None), getattr(te, "quantization", None)):
            probe = getattr(module, probes.get(self.kind, "check_fp8_support"), None)
            if probe is not None:
                ok, reason = probe()
                if not ok:
                    raise InvalidInput(f"{self.name}: Transformer Engine refuses on this machine: {reason}")
                break
        self._recipe = _fp8_recipe(self.kind)

    def convert(self, model: nn.Module) -> nn.Module:
        te = _te()
        layers = model.model.layers if hasattr(getattr(model, "model", None), "layers") else []
        for i, layer in enumerate(layers):
            if can_fuse(layer):
                layers[i] = FusedQwen2DecoderLayer.from_hf(layer, te)
        # FP8 GEMMs need both dimensions divisible by 16; anything else stays in BF16.
        for parent, attr, linear in list(
            decoder_linears(model, keep=lambda m: m.in_features % 16 == 0 and m.out_features % 16 == 0)
        ):
            new = te.Linear(
                linear.in_features, linear.out_features, bias=linear.bias is not None,
                params_dtype=linear.weight.dtype, device=linear.weight.device,
            )  # fmt: skip
            with torch.no_grad():
                new.weight.copy_(linear.weight)
                if linear.bias is not None:
                    new.bias.copy_(linear.bias)
            setattr(parent, attr, new)
        return model

    def autocast(self, device: torch.device):
        te = _te()
        recipe = self._recipe or _fp8_recipe(self.kind)
        stack = contextlib.ExitStack()
        stack.enter_context(bf16_autocast(device))
        if hasattr(te, "fp8_autocast"):
            stack.enter_context(te.fp8_autocast(enabled=True, fp8_recipe=recipe))
        else:  # TE releases that renamed it
            stack.enter_context(te.autocast(enabled=True, recipe=recipe))
        return stack

    def export_state(self, state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
        """Fused layers' weights split back into HF's q/k/v and gate/up; TE's `_extra_state` (FP8
        scaling metadata, meaningless outside TE) dropped."""
        state = unfuse_state(state, config)
        return {k: v for k, v in state.items() if not k.endswith("_extra_state")}


def make(recipe: Recipe) -> TEBackend:
    return TEBackend(recipe)
