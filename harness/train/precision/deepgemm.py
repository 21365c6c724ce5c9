"""`deepgemm:blockwise`: InfiR2's FP8 numerics with DeepGEMM's block-scaled GEMMs (Hopper only).

Every nn.Linear in the decoder layers whose sizes are multiples of 128 becomes a DeepGEMMLinear
(others stay BF16, as TE keeps what its GEMMs cannot take):

    forward  y  = Q(x) @ Q(W)^T                 x in 1x128 groups, W in 128x128 blocks -> BF16
    dgrad    dx = Q(dy) @ Q(W)                  dy in 1x128 groups; W's blocks transposed (exact)
    wgrad    dW = Q(dy^T) @ Q(x^T)^T            both in 1x128 groups along the tokens -> FP32

E4M3 throughout, one FP32 scale amax/448 per group or block (DeepSeek-V3's and DeepGEMM's), the
partial sums promoted to FP32 inside the kernels. The forward keeps for backward only FP8 data:
x^T in groups along the tokens (the wgrad operand) and Q(W)^T, as te:blockwise keeps FP8 copies.
Each tensor is quantised once into both layouts its two GEMMs read (blockquant.py: one Triton
kernel per tensor on the GPU, a cast-transpose as TE's).

The two GEMMs are torch custom ops (`harness::fp8_gemm_nt`, `harness::fp8_wgrad_nt`), so
torch.compile traces the layer whole. On CUDA they call DeepGEMM (revision 3fc6728, staged by
scripts/stage_deepgemm.sh: a JIT that compiles its kernels with nvcc) with the scales already in
the layouts it reads; on CPU they run the reference (dequantise, multiply in FP32), which the CPU
tests use to check the layouts and transposes. The recipe refuses any machine without Hopper, nvcc
and DeepGEMM; emulated:block is its CPU stand-in. Speed, memory and loss parity: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from harness.errors import InvalidInput
from harness.recipes import Recipe
from harness.train.precision.base import PrecisionBackend, bf16_autocast, decoder_linears, require_gpu
from harness.train.precision.blockquant import BLOCK, blocks_back, groups_back, quantize_blocks, quantize_rows_cols

STAGE_HINT = "scripts/stage_deepgemm.sh stages it (DeepGEMM 3fc6728 and CUTLASS headers)"


@torch.library.custom_op("harness::fp8_gemm_nt", mutates_args=())
def fp8_gemm_nt(a: torch.Tensor, a_scales_t: torch.Tensor, b: torch.Tensor, b_scales: torch.Tensor) -> torch.Tensor:
    """a [m, k] in 1x128 groups (scales [k/128, m4], blockquant's row layout) times b [n, k] in 128x128 blocks, transposed: BF16 [m, n]."""
    a_scales = a_scales_t[:, : a.shape[0]].t()  # [m, k/128], column-major and TMA-aligned: DeepGEMM takes it as is
    if a.is_cuda:
        import deep_gemm

        out = torch.empty(a.shape[0], b.shape[0], device=a.device, dtype=torch.bfloat16)
        deep_gemm.gemm_fp8_fp8_bf16_nt((a, a_scales), (b, b_scales), out)
        return out
    return (groups_back(a, a_scales) @ blocks_back(b, b_scales).t()).bfloat16()


@fp8_gemm_nt.register_fake
def _(a, a_scales_t, b, b_scales):
    return a.new_empty(a.shape[0], b.shape[0], dtype=torch.bfloat16)


@torch.library.custom_op("harness::fp8_wgrad_nt", mutates_args=())
def fp8_wgrad_nt(a: torch.Tensor, a_scales: torch.Tensor, b: torch.Tensor, b_scales: torch.Tensor) -> torch.Tensor:
    """a [m, k] times b [n, k] transposed, both in 1x128 groups along k (the tokens; scales [k/128, m] and
    [k/128, n], blockquant's column layout): FP32 [m, n]."""
    if a.is_cuda:
        import deep_gemm

        out = torch.zeros(a.shape[0], b.shape[0], device=a.device, dtype=torch.float32)
        deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt((a, a_scales), (b, b_scales), out)  # accumulates into out
        return out
    return groups_back(a, a_scales.t()) @ groups_back(b, b_scales.t()).t()


@fp8_wgrad_nt.register_fake
def _(a, a_scales, b, b_scales):
    return a.new_empty(a.shape[0], b.shape[0], dtype=torch.float32)


class _DeepGEMMMatmul(torch.autograd.Function):
    """y = x @ W^T + b with the three GEMMs in block-scaled FP8; x is 2-D [tokens, in]."""

    @staticmethod
    def forward(ctx, x, weight, bias, out_dtype: torch.dtype):
        qx, sx, qxt, sxt = quantize_rows_cols(x)  # x's rows for this GEMM, x^T for the weight gradient
        qw, sw, qwt, swt = quantize_blocks(weight)  # W for this GEMM, W^T for the data gradient
        y = fp8_gemm_nt(qx, sx, qw, sw)
        if bias is not None:
            y = y + bias.to(y.dtype)
        ctx.save_for_backward(qxt, sxt, qwt, swt)
        ctx.x_dtype, ctx.w_dtype, ctx.has_bias = x.dtype, weight.dtype, bias is not None
        # Never return an alias of an intermediate (`.to` of a tensor already in out_dtype returns it
        # itself): torch 2.11's compile then routes the output's gradient to the intermediate, and
        # backward receives zeros (pytorch#180642, fixed in 2.12; measured on the H200, docs/PERFORMANCE.md).
        return y if y.dtype == out_dtype else y.to(out_dtype)

    @staticmethod
    def backward(ctx, grad_y):
        qxt, sxt, qwt, swt = ctx.saved_tensors
        qdy, sdy, qdyt, sdyt = quantize_rows_cols(grad_y)  # one read of dy for both GEMMs
        grad_x = fp8_gemm_nt(qdy, sdy, qwt, swt)
        grad_w = fp8_wgrad_nt(qdyt, sdyt, qxt, sxt)
        grad_b = grad_y.float().sum(0).to(ctx.w_dtype) if ctx.has_bias else None
        return grad_x.to(ctx.x_dtype), grad_w.to(ctx.w_dtype), grad_b, None


class DeepGEMMLinear(nn.Linear):
    """nn.Linear whose GEMMs are DeepGEMM's block-scaled FP8 ones; shares the original Parameters."""

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> DeepGEMMLinear:
        with torch.device("meta"):
            new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        new.weight, new.bias = linear.weight, linear.bias  # same Parameters: state_dict keys unchanged
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = x.device.type
        out_dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
        y = _DeepGEMMMatmul.apply(x.reshape(-1, self.in_features), self.weight, self.bias, out_dtype)
        return y.reshape(*x.shape[:-1], self.out_features)


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
            import deep_gemm  # noqa: F401
        except ImportError as exc:
            raise InvalidInput(f"{self.name}: DeepGEMM is not importable ({exc}); {STAGE_HINT}, then put it on "
                               "PYTHONPATH (`source /tmp/DG/env.sh`)") from None  # fmt: skip

    def convert(self, model: nn.Module) -> nn.Module:
        for parent, attr, linear in list(
            decoder_linears(model, keep=lambda m: m.in_features % BLOCK == 0 and m.out_features % BLOCK == 0)
        ):
            setattr(parent, attr, DeepGEMMLinear.from_linear(linear))
        return model

    def autocast(self, device: torch.device):
        return bf16_autocast(device)


def make(recipe: Recipe) -> DeepGEMMBackend:
    return DeepGEMMBackend(recipe)
