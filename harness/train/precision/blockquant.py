"""deepgemm:blockwise's quantisers: E4M3 in 1x128 groups and 128x128 blocks, in DeepGEMM's layouts.

Each GEMM operand of the recipe is needed in two layouts, one per GEMM that reads it:

    activation x [m tokens, k]  rows for the forward (1x128 groups along k) and, transposed, x^T
                                 for the weight gradient (1x128 groups along the tokens)
    gradient   dy [m, n]         the same: rows for dgrad, dy^T for wgrad
    weight     W [n, k]          128x128 blocks; W^T's blocks (dgrad) are the same blocks transposed

`quantize_rows_cols(x)` and `quantize_blocks(w)` give both layouts from one read of the input,
as TE's fused cast-transpose does (Inductor's own code for the two layouts read the input twice and
took about 160 ms of a 7B step more than BF16: docs/PERFORMANCE.md). In the SwiGLU MLP two more
fuse the activation into them: `quantize_swiglu(h)` quantises silu(gate) * up straight from
h = [gate | up], and `quantize_swiglu_backward(h, grad)` the gradient d[gate | up] straight from h
and d(silu(gate) * up), each computed in FP32 and never written in BF16. All four are torch custom
ops: on a CUDA tensor one Triton kernel per call (blockquant_kernels.py: a program per 128x128 tile,
both amaxes, both casts, the transposed store); elsewhere the references below, which the CPU tests
check and the GPU check (`python -m benchmarks.blockquant`, scripts/gpu_deepgemm.sh quant) compares
the kernels against: byte for byte, and for the SwiGLU kernels (whose sigmoid Triton and torch may
round apart in the last bit) to 1 in 10,000 bytes.

Scales are amax/448 in FP32 (DeepSeek-V3's and DeepGEMM's), and they come out in the layouts
DeepGEMM reads without converting them:

    row scales   [k/128, m4]      column-major, m4 = m rounded up to 4 (TMA's 16-byte rows):
                                  `rows_scales[:, :m].t()` is gemm_fp8_fp8_bf16_nt's LHS scales
    col scales   [m128/128, k]    the "k-grouped" layout wgrad_gemm_fp8_fp8_fp32_nt takes as is
    x^T          [k, m128]        tokens zero-padded to a multiple of 128 (zeros add nothing to dW)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 128
FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
INV_FP8_MAX = 1.0 / FP8_MAX


def _multiplier(amax: torch.Tensor) -> torch.Tensor:
    """448/amax as two IEEE roundings, reciprocal then product: the same bits on CPU, in torch's CUDA
    kernels and in the Triton kernel (`448 / t` is exactly this in torch; a scalar divisor is not:
    CUDA multiplies by its reciprocal, so scales are amax * (1/448) everywhere)."""
    return torch.reciprocal(amax) * FP8_MAX


def per_group(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [m, k] (k a multiple of 128) as E4M3 with one scale per 1x128 group: (q [m, k], scales [m, k/128])."""
    m, k = x.shape
    groups = x.float().view(m, k // BLOCK, BLOCK)
    amax = groups.abs().amax(dim=2).clamp(min=1e-12)
    q = (groups * _multiplier(amax).unsqueeze(2)).to(FP8).view(m, k)
    return q, amax * INV_FP8_MAX


def per_block(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [n, k] (both multiples of 128) as E4M3 with one scale per 128x128 block: (q, scales [n/128, k/128])."""
    n, k = x.shape
    blocks = x.float().view(n // BLOCK, BLOCK, k // BLOCK, BLOCK)
    amax = blocks.abs().amax(dim=(1, 3), keepdim=True).clamp(min=1e-12)
    q = (blocks * _multiplier(amax)).to(FP8).view(n, k)
    return q, (amax * INV_FP8_MAX).view(n // BLOCK, k // BLOCK)


def groups_back(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Dequantise q [m, k] with scales [m, k/128] (any strides) to FP32."""
    return (q.float().view(q.shape[0], -1, BLOCK) * scales.unsqueeze(2)).view(q.shape)


def blocks_back(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Dequantise q [n, k] with scales [n/128, k/128] to FP32."""
    return q.float() * scales.repeat_interleave(BLOCK, dim=0).repeat_interleave(BLOCK, dim=1)


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def _transposed(t: torch.Tensor) -> torch.Tensor:
    """t^T in a new contiguous tensor (`.contiguous()` may return t itself: a custom op's outputs may not alias)."""
    return t.t().clone(memory_format=torch.contiguous_format)


def _rows_cols_reference(x: torch.Tensor):
    m, k = x.shape
    q, scales = per_group(x)
    rows_scales = scales.new_zeros(k // BLOCK, _round_up(m, 4))
    rows_scales[:, :m] = scales.t()
    padded = F.pad(x, (0, 0, 0, _round_up(m, BLOCK) - m))
    qt, col_scales = per_group(_transposed(padded))
    return q, rows_scales, qt, _transposed(col_scales)


def _blocks_reference(w: torch.Tensor):
    q, scales = per_block(w)
    return q, scales, _transposed(q), _transposed(scales)


def _swiglu_reference(h: torch.Tensor):
    gate, up = h.float().chunk(2, dim=1)
    return _rows_cols_reference(gate * torch.sigmoid(gate) * up)


def _swiglu_backward_reference(h: torch.Tensor, grad: torch.Tensor):
    gate, up = h.float().chunk(2, dim=1)
    grad, s = grad.float(), torch.sigmoid(gate)
    return _rows_cols_reference(torch.cat([grad * up * (s * (1 + gate * (1 - s))), grad * gate * s], dim=1))


def _empty_outputs(x: torch.Tensor, weight: bool, k: int | None = None):
    """The four outputs' tensors, uninitialised, in the layouts above, for x [m, k] (k: another width
    of the same rows): the Triton kernels' and the fakes' one definition."""
    m, k = x.shape[0], k or x.shape[1]
    m128 = _round_up(m, BLOCK)
    q, qt = x.new_empty(m, k, dtype=FP8), x.new_empty(k, m128, dtype=FP8)
    if weight:
        scales, scales_t = (x.new_empty(m // BLOCK, k // BLOCK, dtype=torch.float32),
                            x.new_empty(k // BLOCK, m // BLOCK, dtype=torch.float32))  # fmt: skip
    else:
        scales, scales_t = (x.new_empty(k // BLOCK, _round_up(m, 4), dtype=torch.float32),
                            x.new_empty(m128 // BLOCK, k, dtype=torch.float32))  # fmt: skip
    return q, scales, qt, scales_t


def _check_multiple(t: torch.Tensor, dims: tuple[int, ...]) -> None:
    """The kernel's tiles are 128 wide: anything else would write past the outputs (the recipe converts only such linears)."""
    if t.dim() != 2 or any(t.shape[d] % BLOCK for d in dims):
        raise ValueError(
            f"block quantisation needs a 2-D tensor with dims {dims} multiples of {BLOCK}; got {tuple(t.shape)}"
        )


@torch.library.custom_op("harness::fp8_quant_rows_cols", mutates_args=())
def quantize_rows_cols(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [m, k] (k a multiple of 128): (q [m, k], row scales [k/128, m4], x^T q [k, m128], col scales [m128/128, k])."""
    _check_multiple(x, dims=(1,))
    if x.is_cuda:
        return _triton_quantize(x.contiguous(), weight=False)
    return _rows_cols_reference(x.contiguous())


@quantize_rows_cols.register_fake
def _(x):
    return _empty_outputs(x, weight=False)


def _check_swiglu(h: torch.Tensor, grad: torch.Tensor | None = None) -> None:
    if h.dim() != 2 or h.shape[1] % (2 * BLOCK):
        raise ValueError(f"SwiGLU quantisation needs h = [gate | up] [m, 2f] with f a multiple of {BLOCK}; "
                         f"got {tuple(h.shape)}")  # fmt: skip
    if grad is not None and grad.shape != (h.shape[0], h.shape[1] // 2):
        raise ValueError(f"SwiGLU's gradient must be [m, f] = {(h.shape[0], h.shape[1] // 2)}; got {tuple(grad.shape)}")


@torch.library.custom_op("harness::fp8_quant_swiglu", mutates_args=())
def quantize_swiglu(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """silu(gate) * up of h = [gate | up] [m, 2f], quantised as quantize_rows_cols quantises an activation
    [m, f]: the down projection's input, from one read of h (never written in BF16)."""
    _check_swiglu(h)
    if h.is_cuda:
        return _triton_swiglu(h.contiguous())
    return _swiglu_reference(h.contiguous())


@quantize_swiglu.register_fake
def _(h):
    return _empty_outputs(h, weight=False, k=h.shape[1] // 2)


@torch.library.custom_op("harness::fp8_quant_swiglu_backward", mutates_args=())
def quantize_swiglu_backward(
    h: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """d[gate | up] [m, 2f] of silu(gate) * up given its gradient `grad` [m, f], quantised as
    quantize_rows_cols quantises a gradient: the gate/up projection's output gradient, computed in
    FP32 from one read of h and grad and never written in BF16."""
    _check_swiglu(h, grad)
    if h.is_cuda:
        return _triton_swiglu(h.contiguous(), grad.contiguous())
    return _swiglu_backward_reference(h.contiguous(), grad.contiguous())


@quantize_swiglu_backward.register_fake
def _(h, grad):
    return _empty_outputs(h, weight=False)


@torch.library.custom_op("harness::fp8_quant_blocks", mutates_args=())
def quantize_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """w [n, k] (multiples of 128): (q [n, k], scales [n/128, k/128], W^T q [k, n], its scales [k/128, n/128])."""
    _check_multiple(w, dims=(0, 1))
    if w.is_cuda:
        return _triton_quantize(w.contiguous(), weight=True)
    return _blocks_reference(w.contiguous())


@quantize_blocks.register_fake
def _(w):
    return _empty_outputs(w, weight=True)


def _kernels():
    """blockquant_kernels, imported at first use (CPU machines have no Triton; the reference runs there)."""
    from harness.train.precision import blockquant_kernels

    return blockquant_kernels


def _kernel():
    """The autotuned cast-transpose kernel."""
    return _kernels().cast_transpose


def _triton_quantize(x: torch.Tensor, weight: bool, config=None):
    """One Triton program per 128x128 tile of x [m, k] (or per K_TILES of them along k): reads each
    once, writes both layouts and scales. `config` (one of `kernel_configs()`) skips the autotuner."""
    m, k = x.shape
    m128 = _round_up(m, BLOCK)
    q, scales, qt, scales_t = _empty_outputs(x, weight)
    row_stride = 0 if weight else scales.shape[1]
    args = (x, q, scales, qt, scales_t, m, k, m128, row_stride)
    constants = {"BLOCK": BLOCK, "WEIGHT": weight, "INV_FP8_MAX": INV_FP8_MAX}
    kernel = _kernel()
    if config is None:
        kernel[lambda meta: (m128 // BLOCK, -(-(k // BLOCK) // meta["K_TILES"]))](*args, **constants)
    else:
        grid = (m128 // BLOCK, -(-(k // BLOCK) // config.kwargs["K_TILES"]))
        kernel.fn[grid](*args, **constants, **config.all_kwargs())
    return q, scales, qt, scales_t


def kernel_configs() -> list:
    """The configurations the autotuner chooses among (benchmarks/blockquant.py checks every one)."""
    return list(_kernel().configs)


def _triton_swiglu(h: torch.Tensor, grad: torch.Tensor | None = None, config=None):
    """The SwiGLU kernels: forward (grad None) quantises silu(gate) * up, backward d[gate | up]; a program per
    128x128 tile of gate (and the up tile f columns on). `config` (one of `swiglu_configs()`) skips the autotuner."""
    m, f = h.shape[0], h.shape[1] // 2
    outputs = _empty_outputs(h, weight=False, k=f if grad is None else 2 * f)
    args = (h, *outputs) if grad is None else (h, grad, *outputs)
    args += (m, f, _round_up(m, BLOCK), outputs[1].shape[1])
    kernel = _kernels().swiglu_cast_transpose if grad is None else _kernels().swiglu_backward_cast_transpose
    grid = (_round_up(m, BLOCK) // BLOCK, f // BLOCK)
    constants = {"BLOCK": BLOCK, "INV_FP8_MAX": INV_FP8_MAX}
    if config is None:
        kernel[grid](*args, **constants)
    else:
        kernel.fn[grid](*args, **constants, **config.all_kwargs())
    return outputs


def swiglu_configs() -> list:
    """The configurations the SwiGLU kernels' autotuner chooses among."""
    return list(_kernels().SWIGLU_CONFIGS)
