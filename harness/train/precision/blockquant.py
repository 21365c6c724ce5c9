"""deepgemm:blockwise's quantisers: E4M3 in 1x128 groups and 128x128 blocks, in DeepGEMM's layouts.

Each GEMM operand of the recipe is needed in two layouts, one per GEMM that reads it:

    activation x [m tokens, k]  rows for the forward (1x128 groups along k) and, transposed, x^T
                                 for the weight gradient (1x128 groups along the tokens)
    gradient   dy [m, n]         the same: rows for dgrad, dy^T for wgrad
    weight     W [n, k]          128x128 blocks; W^T's blocks (dgrad) are the same blocks transposed

`quantize_rows_cols(x)` and `quantize_blocks(w)` give both layouts from one read of the input,
as TE's fused cast-transpose does (Inductor's own code for the two layouts read the input twice and
took about 160 ms of a 7B step more than BF16: docs/PERFORMANCE.md). They are torch custom ops: on
a CUDA tensor one Triton kernel per call (a program per 128x128 tile: both amaxes, both casts, the
transposed store); elsewhere the reference below, which the CPU tests check and the GPU check
(scripts/gpu_deepgemm.sh numerics) compares the kernel against, byte for byte.

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


def _empty_outputs(x: torch.Tensor, weight: bool):
    """The four outputs' tensors, uninitialised, in the layouts above: the Triton kernel's and the fakes' one definition."""
    m, k = x.shape
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


_KERNEL = None


def _kernel():
    """The autotuned Triton kernel, built at first use."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _build_kernel()
    return _KERNEL


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


def _build_kernel():
    """The Triton kernel, built at first use (CPU machines have no Triton; the reference runs there)."""
    import triton
    import triton.language as tl

    # A program takes K_TILES tiles along k, one after another (the loop lets Triton load the next
    # tile while this one is cast); which tiles per program and warps suit a shape is measured at
    # its first call (the configs' speeds: benchmarks/blockquant.py; the kernel's bytes do not depend on it).
    configs = [triton.Config({"K_TILES": 1}, num_warps=w) for w in (4, 8, 16)]
    configs += [triton.Config({"K_TILES": t}, num_warps=w, num_stages=2) for t in (2, 4) for w in (4, 8)]

    @triton.autotune(configs=configs, key=["k", "WEIGHT"])
    @triton.jit
    def cast_transpose(x_ptr, q_ptr, s_ptr, qt_ptr, st_ptr, m, k, m128, row_stride, BLOCK: tl.constexpr,
                       WEIGHT: tl.constexpr, INV_FP8_MAX: tl.constexpr, K_TILES: tl.constexpr):  # fmt: skip
        tile_m = tl.program_id(0)
        lanes = tl.arange(0, BLOCK)
        rows = tile_m * BLOCK + lanes
        inside = rows < m  # tokens past m are the zero padding of x^T
        for step in tl.range(0, K_TILES):
            tile_k = tl.program_id(1) * K_TILES + step
            cols = tile_k * BLOCK + lanes
            real = cols < k  # the last program's tiles past k (k/128 not a multiple of K_TILES)
            x = tl.load(x_ptr + rows[:, None] * k + cols[None, :], mask=inside[:, None] & real[None, :], other=0.0)
            x = x.to(tl.float32)
            magnitude = tl.abs(x)
            row_amax = tl.maximum(tl.max(magnitude, axis=1), 1e-12)  # a 1x128 group per row
            col_amax = tl.maximum(tl.max(magnitude, axis=0), 1e-12)  # and per column (x^T's groups)
            if WEIGHT:  # one amax for the whole 128x128 block, as a vector along each axis
                row_amax = tl.zeros_like(row_amax) + tl.max(row_amax, axis=0)
                col_amax = tl.zeros_like(col_amax) + tl.max(col_amax, axis=0)
            # the reference's roundings (_multiplier): an IEEE reciprocal (Triton's `/` is approximate),
            # times 448; scales amax * (1/448), so the bytes are the reference's. x^T's bytes come from
            # the column vector (in weight mode too: transposing the row-scaled tile, or broadcasting
            # the row vector along the columns, gave wrong bytes for FP32 input on the H200 with
            # Triton 3.6 and NaN input gradients; benchmarks/blockquant.py checks small FP32 weights).
            one = tl.full([BLOCK], 1.0, tl.float32)
            q = (x * (tl.div_rn(one, row_amax) * 448.0)[:, None]).to(tl.float8e4nv)
            qt = (x * (tl.div_rn(one, col_amax) * 448.0)[None, :]).to(tl.float8e4nv)
            tl.store(q_ptr + rows[:, None] * k + cols[None, :], q, mask=inside[:, None] & real[None, :])
            tl.store(qt_ptr + cols[:, None] * m128 + rows[None, :], tl.trans(qt), mask=real[:, None])
            row_scale, col_scale = row_amax * INV_FP8_MAX, col_amax * INV_FP8_MAX
            if WEIGHT:  # [n/128, k/128] and its transpose: one value each, from lane 0
                first = (lanes == 0) & (tile_k < k // BLOCK)
                tl.store(s_ptr + tile_m * (k // BLOCK) + tile_k + lanes * 0, row_scale, mask=first)
                tl.store(st_ptr + tile_k * (m128 // BLOCK) + tile_m + lanes * 0, row_scale, mask=first)
            else:
                tl.store(s_ptr + tile_k * row_stride + rows, row_scale, mask=inside & (tile_k < k // BLOCK))
                tl.store(st_ptr + tile_m * k + cols, col_scale, mask=real)

    return cast_transpose
