"""benchmarks.blockquant: its byte check counts every differing byte and scale (but not the row
scales' TMA padding), and it refuses a machine without CUDA with the reason (the kernel itself
runs only on the GPU: scripts/gpu_deepgemm.sh quant)."""

from __future__ import annotations

import torch
from benchkit import load_benchmark_module

from harness.train.precision import blockquant as bq

bench = load_benchmark_module("blockquant")


def test_the_byte_check_counts_each_differing_byte_and_scale_but_not_the_tma_padding():
    x = torch.randn(200, 256)  # 200 rows: row scales padded to 200 (a multiple of 4), x^T to 256 tokens
    want = bq._rows_cols_reference(x)
    assert bench._differing(want, want, 200, weight=False) == [0, 0, 0, 0]
    got = [t.clone() for t in want]
    got[0].view(torch.uint8)[3, 5] ^= 1  # one FP8 byte of the rows
    got[2].view(torch.uint8)[7, 199] ^= 0x40  # one of x^T
    got[3][1, 0] *= 2  # one column scale
    assert bench._differing(got, want, 200, weight=False) == [1, 0, 1, 1]
    padded = bq._rows_cols_reference(torch.randn(198, 256))  # m4 = 200: two padding columns, never read
    noisy = [t.clone() for t in padded]
    noisy[1][:, 198:] = float("nan")
    assert bench._differing(noisy, padded, 198, weight=False) == [0, 0, 0, 0]


def test_every_quantisation_of_a_7b_layer_is_checked_at_its_training_size():
    tensors = bench.tensors(16384)
    assert {(rows, cols, weight) for _, rows, cols, _, weight, _ in tensors} >= {
        (16384, 3584, False), (16384, 18944, False), (16384, 512, False),
        (3584, 3584, True), (512, 3584, True), (18944, 3584, True), (3584, 18944, True)}  # fmt: skip
    # weights at their init size (N(0, 0.02)): the size at which a wrong kernel once passed spread inputs
    assert {size for *_, weight, size in tensors if weight} == {0.02}


def test_a_machine_without_cuda_is_refused_with_the_reason(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 2
    assert "the Triton kernels need a CUDA GPU; none here" in capsys.readouterr().err


def test_the_swiglu_tolerance_counts_flipped_bytes_and_scales_apart_but_not_the_tma_padding():
    h = torch.randn(198, 512).bfloat16()  # 198 tokens: two row-scale columns of TMA padding
    want = bq._swiglu_reference(h)
    assert bench.near(want, want, 198) == {"bytes": [0, 0], "scales": [0, 0], "byte_share": 0.0, "within": True}
    got = [t.clone() for t in want]
    got[1][:, 198:] = float("nan")  # padding: never read
    got[3][0, 0] *= 1 + 1e-7  # a scale one rounding apart: inside the tolerance
    got[0].view(torch.uint8)[0, 0] ^= 1  # one byte in 116,224: inside (1e-4)
    assert bench.near(got, want, 198)["within"]
    got[2].view(torch.uint8)[:, 0] ^= 1  # 256 more: outside
    assert bench.near(got, want, 198)["bytes"] == [1, 256] and not bench.near(got, want, 198)["within"]
    got = [t.clone() for t in want]
    got[3][1, 2] *= 1.001  # a scale 1e-3 apart: outside
    assert bench.near(got, want, 198)["scales"] == [0, 1] and not bench.near(got, want, 198)["within"]
