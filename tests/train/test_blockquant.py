"""deepgemm:blockwise's quantisers on CPU (the reference; the GPU's Triton kernel is compared with it
byte for byte by benchmarks/blockquant.py in scripts/gpu_deepgemm.sh): both layouts of each tensor,
in the shapes and scale layouts DeepGEMM reads."""

from __future__ import annotations

import pytest
import torch

from harness.train.precision import blockquant as bq


def _dequantised_error(q, scales, x) -> float:
    restored = bq.groups_back(q, scales)
    return float((restored - x).norm() / x.norm())


def test_an_activation_comes_out_in_rows_for_the_forward_and_transposed_along_the_tokens_for_wgrad():
    torch.manual_seed(0)
    tokens, features = 200, 256  # 200 tokens: x^T is zero-padded to 256
    x = torch.randn(tokens, features) * torch.logspace(-3, 3, features)  # columns of very different size
    q, rows_scales, qt, col_scales = bq.quantize_rows_cols(x)
    assert q.shape == (200, 256) and q.dtype == bq.FP8
    # row scales column-major, rows padded to 4 floats (TMA's 16 bytes): their [m, k/128] view has stride (1, m4)
    assert rows_scales.shape == (2, 200)
    assert rows_scales[:, :tokens].t().stride() == (1, 200)
    assert _dequantised_error(q, rows_scales[:, :tokens].t(), x) < 0.05  # E4M3: 3 mantissa bits
    # x^T [features, tokens padded to 128]: groups of 128 tokens, scales [token groups, features]
    assert qt.shape == (256, 256) and col_scales.shape == (2, 256)
    assert torch.all(qt[:, tokens:].float() == 0)
    padded = torch.cat([x, torch.zeros(56, features)])
    assert _dequantised_error(qt, col_scales.t(), padded.t()) < 0.05
    # each group's largest element lands on E4M3's largest value, in both layouts
    assert torch.all(q.float().abs().view(tokens, 2, 128).amax(dim=2) == 448.0)
    assert torch.all(qt[:, :128].float().abs().amax(dim=1) == 448.0)


def test_a_weight_comes_out_in_128x128_blocks_with_its_transpose_for_the_data_gradient():
    torch.manual_seed(0)
    w = torch.randn(384, 256)
    q, scales, qt, scales_t = bq.quantize_blocks(w)
    assert scales.shape == (3, 2) and scales_t.shape == (2, 3)
    assert torch.equal(qt.view(torch.uint8), q.t().contiguous().view(torch.uint8))  # the same blocks, transposed
    assert torch.equal(scales_t, scales.t())
    restored = bq.blocks_back(q, scales)
    assert float((restored - w).norm() / w.norm()) < 0.05


def test_a_single_block_comes_out_in_new_tensors_not_aliases():
    # a custom op's outputs may not alias each other or its input; 128x128 weights have 1x1 scales,
    # whose transpose `.contiguous()` would hand back as the same tensor
    q, scales, qt, scales_t = bq.quantize_blocks(torch.randn(128, 128))
    assert scales.data_ptr() != scales_t.data_ptr() and q.data_ptr() != qt.data_ptr()


def test_shapes_the_128_wide_tiles_cannot_cover_are_refused_not_written_past():
    with pytest.raises(ValueError, match=r"dims \(0, 1\) multiples of 128; got \(300, 256\)"):
        bq.quantize_blocks(torch.randn(300, 256))
    with pytest.raises(ValueError, match=r"dims \(1,\) multiples of 128; got \(256, 200\)"):
        bq.quantize_rows_cols(torch.randn(256, 200))


def test_swiglu_comes_out_quantised_as_an_activation_from_gate_and_up():
    torch.manual_seed(0)
    h = torch.randn(200, 512).bfloat16()  # [gate | up], f = 256
    gate, up = h.float().chunk(2, dim=1)
    want = torch.nn.functional.silu(gate) * up
    q, rows_scales, qt, col_scales = bq.quantize_swiglu(h)
    assert (q.shape, rows_scales.shape, qt.shape, col_scales.shape) == ((200, 256), (2, 200), (256, 256), (2, 256))
    assert _dequantised_error(q, rows_scales[:, :200].t(), want) < 0.05
    padded = torch.cat([want, torch.zeros(56, 256)])
    assert _dequantised_error(qt, col_scales.t(), padded.t()) < 0.05
    assert torch.all(qt[:, 200:].float() == 0)  # the tokens' zero padding of the transpose


def test_swiglu_backward_comes_out_as_autograds_gate_and_up_gradients_quantised():
    torch.manual_seed(0)
    h = torch.randn(256, 512).bfloat16()
    grad = torch.randn(256, 256).bfloat16()
    leaf = h.float().requires_grad_()
    gate, up = leaf.chunk(2, dim=1)
    (torch.nn.functional.silu(gate) * up).backward(grad.float())
    q, rows_scales, qt, col_scales = bq.quantize_swiglu_backward(h, grad)
    assert q.shape == (256, 512) and qt.shape == (512, 256)  # d[gate | up], both layouts
    assert _dequantised_error(q, rows_scales.t(), leaf.grad) < 0.05
    assert _dequantised_error(qt, col_scales.t(), leaf.grad.t()) < 0.05


def test_swiglu_shapes_the_tiles_cannot_cover_are_refused():
    with pytest.raises(ValueError, match=r"f a multiple of 128; got \(256, 384\)"):
        bq.quantize_swiglu(torch.randn(256, 384))
    with pytest.raises(ValueError, match=r"gradient must be \[m, f\] = \(256, 128\); got \(256, 256\)"):
        bq.quantize_swiglu_backward(torch.randn(256, 256), torch.randn(256, 256))
