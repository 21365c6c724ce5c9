"""`deepgemm:blockwise`: InfiR2's FP8 numerics with DeepGEMM's block-scaled GEMMs (Hopper only).

E4M3 throughout, one FP32 scale amax/448 per 1x128 group (activations, gradients) or 128x128 block
(weights), DeepSeek-V3's and DeepGEMM's; the partial sums promoted to FP32 inside the kernels.

Every Qwen2 decoder layer whose projection sizes are multiples of 128 becomes a DeepGEMMDecoderLayer
(deepgemm_layer.py): q/k/v as one GEMM, o_proj, and the MLP's gate/up as one GEMM with SwiGLU fused
into the quantisations around it; the weights mapped from and back to HF's layout as TE's layers'
are. Any other decoder-layer linear whose sizes are multiples of 128 becomes a DeepGEMMLinear; the
rest stay BF16, as TE keeps what its GEMMs cannot take. The GEMMs and what backward keeps:
deepgemm_ops.py; the quantisation kernels (one read of each tensor for both layouts its GEMMs read):
blockquant.py.

The recipe refuses any machine without Hopper, nvcc, and DeepGEMM 3fc6728 with
scripts/deepgemm-wgrad-store.patch; emulated:block is its CPU stand-in. Speed, memory and loss
parity: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from harness.errors import InvalidInput
from harness.recipes import Recipe
from harness.train.precision.base import PrecisionBackend, bf16_autocast, decoder_linears, require_gpu
from harness.train.precision.blockquant import BLOCK
from harness.train.precision.deepgemm_layer import MODULES, DeepGEMMDecoderLayer, DeepGEMMLinear, can_fuse_blocks
from harness.train.precision.te_layer import unfuse_state

__all__ = ["DeepGEMMBackend", "DeepGEMMDecoderLayer", "DeepGEMMLinear", "make"]

STAGE_HINT = "scripts/stage_deepgemm.sh stages it (DeepGEMM 3fc6728 with its patch, and CUTLASS headers)"


def _nvcc() -> str | None:
    """nvcc on PATH, else in $CUDA_HOME/bin (default /usr/local/cuda, where the GPU machine has it)."""
    candidate = Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda") / "bin" / "nvcc"
    return shutil.which("nvcc") or (str(candidate) if candidate.is_file() else None)


class DeepGEMMBackend(PrecisionBackend):
    emulated = False

    def __init__(self, recipe: Recipe):
        self.recipe, self.name = recipe, recipe.name

    def check_available(self, device: torch.device) -> None:
        """Hopper (SM90: DeepGEMM 3fc6728 has no other kernels), nvcc for its JIT, and DeepGEMM itself."""
        require_gpu(self.recipe, device, "DeepGEMM")
        capability = torch.cuda.get_device_capability(device)
        if capability != (9, 0):
            raise InvalidInput(f"{self.name}: DeepGEMM 3fc6728's block-scaled kernels are Hopper's (compute capability "
                               f"9.0); this GPU has {capability[0]}.{capability[1]} — use te:blockwise, or "
                               f"{self.recipe.fallback} for the same numerics emulated")  # fmt: skip
        if _nvcc() is None:
            raise InvalidInput(f"{self.name}: DeepGEMM compiles its kernels with nvcc at first use; no nvcc on PATH or "
                               "in $CUDA_HOME/bin (default /usr/local/cuda): add the CUDA toolkit's bin/ to PATH")  # fmt: skip
        try:
            import deep_gemm
        except ImportError as exc:
            raise InvalidInput(f"{self.name}: DeepGEMM is not importable ({exc}); {STAGE_HINT}, then put it on "
                               "PYTHONPATH (`source /tmp/DG/env.sh`)") from None  # fmt: skip
        if "accumulate" not in inspect.signature(deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt).parameters:
            raise InvalidInput(f"{self.name}: the DeepGEMM at {Path(deep_gemm.__file__).parent} lacks "
                               "scripts/deepgemm-wgrad-store.patch (weight gradients written in the weight's "
                               f"dtype); {STAGE_HINT}")  # fmt: skip

    def convert(self, model: nn.Module) -> nn.Module:
        layers = model.model.layers if hasattr(getattr(model, "model", None), "layers") else []
        for i, layer in enumerate(layers):
            if can_fuse_blocks(layer):
                layers[i] = DeepGEMMDecoderLayer.from_hf(layer, MODULES)
        for parent, attr, linear in list(
            decoder_linears(model, keep=lambda m: m.in_features % BLOCK == 0 and m.out_features % BLOCK == 0)
        ):
            setattr(parent, attr, DeepGEMMLinear.from_linear(linear))
        return model

    def autocast(self, device: torch.device):
        return bf16_autocast(device)

    def export_state(self, state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
        """The fused layers' q/k/v and gate/up weights split back into HF's projections."""
        return unfuse_state(state, config)


def make(recipe: Recipe) -> DeepGEMMBackend:
    return DeepGEMMBackend(recipe)
