"""deepgemm:blockwise's GEMMs and the autograd Functions built from them (the recipe: deepgemm.py).

    forward  y  = Q(x) @ Q(W)^T                 x in 1x128 groups, W in 128x128 blocks -> BF16
    dgrad    dx = Q(dy) @ Q(W)                  dy in 1x128 groups; W's blocks transposed (exact)
    wgrad    dW = Q(dy^T) @ Q(x^T)^T            both in 1x128 groups along the tokens -> the weight's dtype

The two GEMMs are torch custom ops (`harness::fp8_gemm_nt`, `harness::fp8_wgrad_nt`), so
torch.compile traces a layer whole. On CUDA they call DeepGEMM (revision 3fc6728 with
scripts/deepgemm-wgrad-store.patch, staged by scripts/stage_deepgemm.sh: a JIT that compiles its
kernels with nvcc) with the scales already in the layouts it reads (BF16 weight gradients with the wide
tile where scripts/deepgemm-wgrad-wide.patch has been applied: an experiment, not staged by default;
docs/PERFORMANCE.md); on CPU they run the reference
(dequantise, multiply in FP32), which the CPU tests use to check the layouts and transposes.
The forward keeps for backward only FP8 data and scales (x^T in groups along the tokens, Q(W)^T),
plus, in the SwiGLU MLP, h = [gate | up] in BF16.
"""

from __future__ import annotations

import inspect
from functools import cache

import torch

from harness.train.precision.blockquant import (
    blocks_back,
    groups_back,
    quantize_blocks,
    quantize_rows_cols,
    quantize_swiglu,
    quantize_swiglu_backward,
)


def _no_autocast(t: torch.Tensor):
    """The CPU references multiply in FP32 as DeepGEMM accumulates: eager custom ops run under the caller's
    autocast, which would make their matmuls BF16 (and compiled graphs, which trace autocast away, differ)."""
    return torch.autocast(device_type=t.device.type, enabled=False)


@torch.library.custom_op("harness::fp8_gemm_nt", mutates_args=())
def fp8_gemm_nt(a: torch.Tensor, a_scales_t: torch.Tensor, b: torch.Tensor, b_scales: torch.Tensor) -> torch.Tensor:
    """a [m, k] in 1x128 groups (scales [k/128, m4], blockquant's row layout) times b [n, k] in 128x128 blocks, transposed: BF16 [m, n]."""
    a_scales = a_scales_t[:, : a.shape[0]].t()  # [m, k/128], column-major and TMA-aligned: DeepGEMM takes it as is
    if a.is_cuda:
        import deep_gemm

        out = torch.empty(a.shape[0], b.shape[0], device=a.device, dtype=torch.bfloat16)
        deep_gemm.gemm_fp8_fp8_bf16_nt((a, a_scales), (b, b_scales), out)
        return out
    with _no_autocast(a):
        return (groups_back(a, a_scales) @ blocks_back(b, b_scales).t()).bfloat16()


@fp8_gemm_nt.register_fake
def _(a, a_scales_t, b, b_scales):
    return a.new_empty(a.shape[0], b.shape[0], dtype=torch.bfloat16)


@cache
def wgrad_options(wgrad_gemm, out_dtype: torch.dtype) -> dict[str, bool]:
    """The keyword arguments the recipe gives DeepGEMM's weight-gradient GEMM: a plain store
    (scripts/deepgemm-wgrad-store.patch, required) and, for BF16 outputs where the DeepGEMM in use has
    it, the wide tile (scripts/deepgemm-wgrad-wide.patch, which `scripts/gpu_deepgemm.sh wide` applies
    and keeps only where it measured the same bits and faster)."""
    options = {"accumulate": False}
    if out_dtype == torch.bfloat16 and "wide_tile" in inspect.signature(wgrad_gemm).parameters:
        options["wide_tile"] = True
    return options


@torch.library.custom_op("harness::fp8_wgrad_nt", mutates_args=())
def fp8_wgrad_nt(
    a: torch.Tensor, a_scales: torch.Tensor, b: torch.Tensor, b_scales: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """a [m, k] times b [n, k] transposed, both in 1x128 groups along k (the tokens; scales [k/128, m] and
    [k/128, n], blockquant's column layout): [m, n] in out_dtype (the weight's: BF16 or FP32), rounded
    once from the FP32 accumulators."""
    if a.is_cuda:
        import deep_gemm

        out = torch.empty(a.shape[0], b.shape[0], device=a.device, dtype=out_dtype)
        # accumulate=False: a plain store (no zeroed FP32 buffer, no cast after); wide_tile: wgrad_options
        wgrad = deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt
        wgrad((a, a_scales), (b, b_scales), out, **wgrad_options(wgrad, out_dtype))
        return out
    with _no_autocast(a):
        return (groups_back(a, a_scales.t()) @ groups_back(b, b_scales.t()).t()).to(out_dtype)


@fp8_wgrad_nt.register_fake
def _(a, a_scales, b, b_scales, out_dtype):
    return a.new_empty(a.shape[0], b.shape[0], dtype=out_dtype)


def _output(y: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    # Never return an alias of an intermediate (`.to` of a tensor already in out_dtype returns it
    # itself): torch 2.11's compile then routes the output's gradient to the intermediate, and
    # backward receives zeros (pytorch#180642, fixed in 2.12; measured on the H200, docs/PERFORMANCE.md).
    return y if y.dtype == out_dtype else y.to(out_dtype)


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
        return _output(y, out_dtype)

    @staticmethod
    def backward(ctx, grad_y):
        qxt, sxt, qwt, swt = ctx.saved_tensors
        qdy, sdy, qdyt, sdyt = quantize_rows_cols(grad_y)  # one read of dy for both GEMMs
        grad_x = fp8_gemm_nt(qdy, sdy, qwt, swt)
        grad_w = fp8_wgrad_nt(qdyt, sdyt, qxt, sxt, ctx.w_dtype)
        grad_b = grad_y.float().sum(0).to(ctx.w_dtype) if ctx.has_bias else None
        return grad_x.to(ctx.x_dtype), grad_w, grad_b, None


class _DeepGEMMSwiGLUMLP(torch.autograd.Function):
    """y = (silu(gate) * up) @ W2^T with [gate | up] = x @ W1^T: a SwiGLU MLP whose four GEMMs are
    block-scaled FP8 and whose activation is fused with the quantisations around it (blockquant's
    SwiGLU kernels): silu(gate) * up is quantised for the down projection straight from h, and
    d[gate | up] for the gate/up projection's GEMMs straight from h and the down projection's dgrad.
    Kept for backward: h [m, 2f] in BF16 (as the BF16 arm's SwiGLU keeps gate and up) and FP8 data."""

    @staticmethod
    def forward(ctx, x, w1, w2, out_dtype: torch.dtype):
        qx, sx, qxt, sxt = quantize_rows_cols(x)
        qw1, sw1, qw1t, sw1t = quantize_blocks(w1)
        h = fp8_gemm_nt(qx, sx, qw1, sw1)  # [gate | up], BF16
        qa, sa, qat, sat = quantize_swiglu(h)
        qw2, sw2, qw2t, sw2t = quantize_blocks(w2)
        y = fp8_gemm_nt(qa, sa, qw2, sw2)
        ctx.save_for_backward(qxt, sxt, qw1t, sw1t, h, qat, sat, qw2t, sw2t)
        ctx.x_dtype, ctx.w_dtype = x.dtype, w1.dtype
        return _output(y, out_dtype)

    @staticmethod
    def backward(ctx, grad_y):
        qxt, sxt, qw1t, sw1t, h, qat, sat, qw2t, sw2t = ctx.saved_tensors
        qdy, sdy, qdyt, sdyt = quantize_rows_cols(grad_y)
        grad_a = fp8_gemm_nt(qdy, sdy, qw2t, sw2t)  # d(silu(gate) * up), BF16
        grad_w2 = fp8_wgrad_nt(qdyt, sdyt, qat, sat, ctx.w_dtype)
        qdh, sdh, qdht, sdht = quantize_swiglu_backward(h, grad_a)
        grad_x = fp8_gemm_nt(qdh, sdh, qw1t, sw1t)
        grad_w1 = fp8_wgrad_nt(qdht, sdht, qxt, sxt, ctx.w_dtype)
        return grad_x.to(ctx.x_dtype), grad_w1, grad_w2, None


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight^T + bias through DeepGEMM's GEMMs, for x of any leading dims; the output in autocast's dtype."""
    y = _DeepGEMMMatmul.apply(x.reshape(-1, x.shape[-1]), weight, bias, _out_dtype(x))
    return y.reshape(*x.shape[:-1], weight.shape[0])


def fp8_swiglu_mlp(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """down(silu(gate) * up) with [gate | up] = x @ w1^T and down's weight w2, through _DeepGEMMSwiGLUMLP."""
    y = _DeepGEMMSwiGLUMLP.apply(x.reshape(-1, x.shape[-1]), w1, w2, _out_dtype(x))
    return y.reshape(*x.shape[:-1], w2.shape[0])


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
