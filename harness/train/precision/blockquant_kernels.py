"""The Triton kernels behind blockquant's custom ops (imported on CUDA machines only: CPUs have no Triton).

Three kernels, one program per 128x128 tile of what they quantise, each reading its inputs once:

    cast_transpose          x (an activation, a gradient or a weight) -> both FP8 layouts and scales
    swiglu_cast_transpose   h = [gate | up] -> silu(gate) * up, quantised in both layouts (the down
                            projection's input), never written in BF16
    swiglu_backward_cast_transpose
                            h and d(silu(gate) * up) -> d[gate | up], quantised in both layouts (the
                            gate/up projection's output gradient), never written in BF16

The outputs and their layouts are blockquant.py's (`_empty_outputs`); the bytes are its reference's
(the roundings are spelled out in `_cast_both`). benchmarks/blockquant.py checks them on the GPU.
"""

from __future__ import annotations

import triton
import triton.language as tl

# A program takes K_TILES tiles along k, one after another (the loop lets Triton load the next tile
# while this one is cast); which tiles per program and warps suit a shape is measured at its first
# call (the configs' speeds: benchmarks/blockquant.py; the kernel's bytes do not depend on it).
CONFIGS = [triton.Config({"K_TILES": 1}, num_warps=w) for w in (4, 8, 16)]
CONFIGS += [triton.Config({"K_TILES": t}, num_warps=w, num_stages=2) for t in (2, 4) for w in (4, 8)]
SWIGLU_CONFIGS = [triton.Config({}, num_warps=w) for w in (4, 8, 16)]


@triton.jit
def _amaxes(x, WEIGHT: tl.constexpr):
    """Per-row and per-column amax of an FP32 tile (1x128 groups both ways), or the block's in both vectors."""
    magnitude = tl.abs(x)
    row_amax = tl.maximum(tl.max(magnitude, axis=1), 1e-12)
    col_amax = tl.maximum(tl.max(magnitude, axis=0), 1e-12)
    if WEIGHT:  # one amax for the whole 128x128 block, as a vector along each axis
        row_amax = tl.zeros_like(row_amax) + tl.max(row_amax, axis=0)
        col_amax = tl.zeros_like(col_amax) + tl.max(col_amax, axis=0)
    return row_amax, col_amax


@triton.jit
def _cast_both(x, row_amax, col_amax, q_ptrs, q_mask, qt_ptrs, qt_mask, BLOCK: tl.constexpr):
    """Store x scaled by its row groups and, transposed, by its column groups, as E4M3.

    The reference's roundings (blockquant._multiplier): an IEEE reciprocal (Triton's `/` is
    approximate), times 448, so the bytes are the reference's. x^T's bytes come from the column
    vector (for weights too: transposing the row-scaled tile, or broadcasting the row vector along
    the columns, gave wrong bytes for FP32 input on the H200 with Triton 3.6, and NaN input gradients).
    """
    one = tl.full([BLOCK], 1.0, tl.float32)
    q = (x * (tl.div_rn(one, row_amax) * 448.0)[:, None]).to(tl.float8e4nv)
    qt = (x * (tl.div_rn(one, col_amax) * 448.0)[None, :]).to(tl.float8e4nv)
    tl.store(q_ptrs, q, mask=q_mask)
    tl.store(qt_ptrs, tl.trans(qt), mask=qt_mask)


@triton.jit
def _activation_tile(x, tile_m, tile_k, rows, cols, inside, real, q_ptr, s_ptr, qt_ptr, st_ptr, k, m128, row_stride,
                     BLOCK: tl.constexpr, INV_FP8_MAX: tl.constexpr):  # fmt: skip
    """Quantise one FP32 tile of an activation [m, k] (rows: 1x128 groups; x^T: groups along the tokens) and store it."""
    row_amax, col_amax = _amaxes(x, False)
    q_ptrs, qt_ptrs = q_ptr + rows[:, None] * k + cols[None, :], qt_ptr + cols[:, None] * m128 + rows[None, :]
    _cast_both(x, row_amax, col_amax, q_ptrs, inside[:, None] & real[None, :], qt_ptrs, real[:, None], BLOCK)
    tl.store(s_ptr + tile_k * row_stride + rows, row_amax * INV_FP8_MAX, mask=inside & (tile_k < k // BLOCK))
    tl.store(st_ptr + tile_m * k + cols, col_amax * INV_FP8_MAX, mask=real)


@triton.autotune(configs=CONFIGS, key=["k", "WEIGHT"])
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
        if WEIGHT:  # 128x128 blocks: [n/128, k/128] scales and their transpose, one value each (from lane 0)
            row_amax, col_amax = _amaxes(x, True)
            q_ptrs, qt_ptrs = q_ptr + rows[:, None] * k + cols[None, :], qt_ptr + cols[:, None] * m128 + rows[None, :]
            _cast_both(x, row_amax, col_amax, q_ptrs, inside[:, None] & real[None, :], qt_ptrs, real[:, None], BLOCK)
            first = (lanes == 0) & (tile_k < k // BLOCK)
            tl.store(s_ptr + tile_m * (k // BLOCK) + tile_k + lanes * 0, row_amax * INV_FP8_MAX, mask=first)
            tl.store(st_ptr + tile_k * (m128 // BLOCK) + tile_m + lanes * 0, row_amax * INV_FP8_MAX, mask=first)
        else:
            _activation_tile(x, tile_m, tile_k, rows, cols, inside, real, q_ptr, s_ptr, qt_ptr, st_ptr, k, m128,
                             row_stride, BLOCK, INV_FP8_MAX)  # fmt: skip


@triton.jit
def _gate_up(h_ptr, rows, cols, inside, f):
    """The FP32 gate and up tiles of h = [gate | up] [m, 2f] at gate columns `cols`."""
    at = h_ptr + rows[:, None] * (2 * f) + cols[None, :]
    gate = tl.load(at, mask=inside[:, None], other=0.0).to(tl.float32)
    up = tl.load(at + f, mask=inside[:, None], other=0.0).to(tl.float32)
    return gate, up


@triton.autotune(configs=SWIGLU_CONFIGS, key=["f"])
@triton.jit
def swiglu_cast_transpose(h_ptr, q_ptr, s_ptr, qt_ptr, st_ptr, m, f, m128, row_stride, BLOCK: tl.constexpr,
                          INV_FP8_MAX: tl.constexpr):  # fmt: skip
    tile_m, tile_f = tl.program_id(0), tl.program_id(1)
    lanes = tl.arange(0, BLOCK)
    rows, cols = tile_m * BLOCK + lanes, tile_f * BLOCK + lanes
    inside, real = rows < m, cols < f  # f is a multiple of 128: every column is real
    gate, up = _gate_up(h_ptr, rows, cols, inside, f)
    a = gate * tl.sigmoid(gate) * up
    _activation_tile(a, tile_m, tile_f, rows, cols, inside, real, q_ptr, s_ptr, qt_ptr, st_ptr, f, m128, row_stride,
                     BLOCK, INV_FP8_MAX)  # fmt: skip


@triton.autotune(configs=SWIGLU_CONFIGS, key=["f"])
@triton.jit
def swiglu_backward_cast_transpose(h_ptr, da_ptr, q_ptr, s_ptr, qt_ptr, st_ptr, m, f, m128, row_stride,
                                   BLOCK: tl.constexpr, INV_FP8_MAX: tl.constexpr):  # fmt: skip
    tile_m, tile_f = tl.program_id(0), tl.program_id(1)
    lanes = tl.arange(0, BLOCK)
    rows, cols = tile_m * BLOCK + lanes, tile_f * BLOCK + lanes
    inside, real = rows < m, cols < 2 * f
    gate, up = _gate_up(h_ptr, rows, cols, inside, f)
    da = tl.load(da_ptr + rows[:, None] * f + cols[None, :], mask=inside[:, None], other=0.0).to(tl.float32)
    s = tl.sigmoid(gate)
    d_gate = da * up * (s * (1.0 + gate * (1.0 - s)))
    d_up = da * gate * s
    # d[gate | up] [m, 2f]: this program's gate tile and, f columns on, its up tile
    _activation_tile(d_gate, tile_m, tile_f, rows, cols, inside, real, q_ptr, s_ptr, qt_ptr, st_ptr, 2 * f, m128,
                     row_stride, BLOCK, INV_FP8_MAX)  # fmt: skip
    _activation_tile(d_up, tile_m, tile_f + f // BLOCK, rows, cols + f, inside, real, q_ptr, s_ptr, qt_ptr, st_ptr,
                     2 * f, m128, row_stride, BLOCK, INV_FP8_MAX)  # fmt: skip
