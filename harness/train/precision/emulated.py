"""`emulated:{tensor,row,block}`: FP8 training numerics simulated with torch's float8 dtypes. EMULATED.

Every nn.Linear in the decoder layers becomes an EmulatedFP8Linear whose three GEMMs see
operands quantised to FP8 and dequantised again, then multiplied in BF16:

    forward  y  = Q(x) @ Q(W)^T          x: activations, W: weights
    backward dx = Q(dy) @ Q(W)           dy: grad_output
             dW = Q(dy^T) @ Q(x^T)^T     (scales grouped along the contraction dim, tokens here)

Scales group elements along each GEMM's contraction dimension, as the real kernels need:

    tensor: one scale per tensor, amax / fp8_max exactly (TE current scaling, torchao tensorwise)
    row:    one scale per row, power-of-2 (torchao rowwise)
    block:  1x128 for activations and gradients, 128x128 for weights, power-of-2
            (TE Float8BlockScaling = DeepSeek-V3 / InfiR2's recipe); blocks are clipped to the
            tensor's size

`+swiglu8` (emulated:tensor+swiglu8, emulated:row+swiglu8, emulated:block+swiglu8) also keeps the SwiGLU inputs for
backward in FP8 (swiglu8.py), the CPU stand-in for torchao's recipe of that name.

Formats: E4M3 for activations and weights; gradients in E5M2 for tensor/row (TE's HYBRID format)
and E4M3 for block, which is what TE's Float8BlockScaling uses by default (its per-block scales
remove the need for E5M2's range). This reproduces rounding and clipping, not speed or memory:
results are labelled emulated everywhere. Embeddings and lm_head stay in high precision.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.recipes import Recipe
from harness.train.precision.base import PrecisionBackend, bf16_autocast, decoder_linears
from harness.train.precision.swiglu8 import use_swiglu_saved_fp8

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
FULL = (1, math.inf)  # one row, all columns


class Scaling:
    """Block shapes (rows, cols) for activations, weights, gradients; power-of-2 scales; gradient format."""

    def __init__(self, act, weight, grad, pow2: bool, grad_dtype: torch.dtype):
        self.act, self.weight, self.grad, self.pow2, self.grad_dtype = act, weight, grad, pow2, grad_dtype


RECIPES = {
    "tensor": Scaling(None, None, None, pow2=False, grad_dtype=E5M2),
    "row": Scaling(FULL, FULL, FULL, pow2=True, grad_dtype=E5M2),
    "block": Scaling((1, 128), (128, 128), (1, 128), pow2=True, grad_dtype=E4M3),
}


def quantize_dequantize(t: torch.Tensor, dtype: torch.dtype, block, pow2: bool) -> torch.Tensor:
    """Round a 2-D tensor through `dtype` with one scale per block (None: per tensor); returns fp32."""
    x = t.float()
    rows, cols = x.shape
    br, bc = (rows, cols) if block is None else (min(block[0], rows), min(block[1], cols))
    pr, pc = -rows % br, -cols % bc
    if pr or pc:
        x = torch.nn.functional.pad(x, (0, pc, 0, pr))
    blocks = x.reshape(x.shape[0] // br, br, x.shape[1] // bc, bc)
    fmax = torch.finfo(dtype).max
    amax = blocks.abs().amax(dim=(1, 3), keepdim=True)
    scale = torch.where(amax > 0, fmax / amax.clamp(min=1e-30), torch.ones_like(amax))
    if pow2:
        scale = torch.exp2(torch.floor(torch.log2(scale)))  # exact in any format, like TE's blockwise
    q = (blocks * scale).clamp(-fmax, fmax).to(dtype).float() / scale
    return q.reshape(x.shape)[:rows, :cols]


class _FP8Matmul(torch.autograd.Function):
    """y = x @ W^T + b with emulated FP8 operands in all three GEMMs; x is 2-D [tokens, in]."""

    @staticmethod
    def forward(ctx, x, weight, bias, recipe: Scaling, out_dtype: torch.dtype):
        qx = quantize_dequantize(x, E4M3, recipe.act, recipe.pow2)
        qw = quantize_dequantize(weight, E4M3, recipe.weight, recipe.pow2)
        y = qx.bfloat16() @ qw.bfloat16().t()
        if bias is not None:
            y = y + bias.bfloat16()
        ctx.save_for_backward(x, weight)
        ctx.recipe, ctx.has_bias = recipe, bias is not None
        # Not `y.to(out_dtype)` when y already has it: an alias of an intermediate gets a zero
        # gradient under torch 2.11's compile (pytorch#180642; harness/train/precision/deepgemm.py).
        return y if y.dtype == out_dtype else y.to(out_dtype)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        r = ctx.recipe
        # dgrad: contraction over output features.
        q_dy = quantize_dequantize(grad_y, r.grad_dtype, r.grad, r.pow2)
        q_w_t = quantize_dequantize(weight.t(), E4M3, r.weight, r.pow2)
        grad_x = (q_dy.bfloat16() @ q_w_t.bfloat16().t()).to(x.dtype)
        # wgrad: contraction over tokens, so both operands are grouped along the token dim.
        q_dy_t = quantize_dequantize(grad_y.t(), r.grad_dtype, r.grad, r.pow2)
        q_x_t = quantize_dequantize(x.t(), E4M3, r.act, r.pow2)
        grad_w = (q_dy_t.bfloat16() @ q_x_t.bfloat16().t()).to(weight.dtype)
        grad_b = grad_y.float().sum(0).to(weight.dtype) if ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None


class EmulatedFP8Linear(nn.Linear):
    """nn.Linear whose GEMMs use emulated FP8; shares the original weight and bias Parameters."""

    recipe: Scaling

    @classmethod
    def from_linear(cls, linear: nn.Linear, recipe: Scaling) -> EmulatedFP8Linear:
        with torch.device("meta"):
            new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        new.weight, new.bias = linear.weight, linear.bias  # same Parameters: state_dict keys unchanged
        new.recipe = recipe
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Output dtype follows autocast like nn.Linear's would (BF16 inside autocast, else the input's).
        kind = x.device.type
        out_dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
        y = _FP8Matmul.apply(x.reshape(-1, self.in_features), self.weight, self.bias, self.recipe, out_dtype)
        return y.reshape(*x.shape[:-1], self.out_features)


class EmulatedBackend(PrecisionBackend):
    emulated = True

    def __init__(self, recipe: Recipe):
        self.recipe, self.name, self.swiglu8 = recipe, recipe.name, recipe.swiglu8
        self.scaling = RECIPES[recipe.scaling]  # its block shapes, scale rounding and gradient format

    def check_available(self, device: torch.device) -> None:
        """Runs anywhere torch has float8 dtypes (CPU included)."""

    def convert(self, model: nn.Module) -> nn.Module:
        for parent, attr, linear in list(decoder_linears(model)):
            setattr(parent, attr, EmulatedFP8Linear.from_linear(linear, self.scaling))
        return use_swiglu_saved_fp8(model, self.name) if self.swiglu8 else model

    def autocast(self, device: torch.device):
        return bf16_autocast(device)


def make(recipe: Recipe) -> EmulatedBackend:
    return EmulatedBackend(recipe)
