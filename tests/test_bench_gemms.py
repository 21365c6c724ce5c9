"""benchmarks.gemms: the GEMMs it times are the layer's, its FP8 operands the recipe's blocks, and it
refuses a machine without FP8 GEMMs with the reason (the timings themselves need a Hopper GPU)."""

from __future__ import annotations

import pytest
import torch
from benchkit import load_benchmark_module

gemms = load_benchmark_module("gemms")


def test_the_three_gemms_of_every_linear_cover_a_training_step_of_the_layer():
    tokens = 1024
    shapes = gemms.gemm_shapes(tokens)
    assert len(shapes) == 3 * len(gemms.LINEARS)
    # forward, data gradient and weight gradient each cost 2 x tokens x in x out
    per_linear = {name: 2 * tokens * out * inp for name, (out, inp) in gemms.LINEARS.items()}
    for name, _, m, n, k in shapes:
        assert 2 * m * n * k == per_linear[name]
    assert {(p, m, n, k) for name, p, m, n, k in shapes if name == "down"} == {
        ("fwd", tokens, 3584, 18944), ("dgrad", tokens, 18944, 3584), ("wgrad", 3584, 18944, tokens)}  # fmt: skip


@pytest.mark.parametrize("kind", ["group", "block"])
def test_fp8_operands_round_trip_with_one_scale_per_block(kind):
    torch.manual_seed(0)
    x = torch.randn(256, 384) * torch.logspace(-3, 3, 384)  # columns of very different magnitude
    q, scales = gemms.per_group(x) if kind == "group" else gemms.per_block(x)
    assert q.dtype == torch.float8_e4m3fn and scales.dtype == torch.float32
    rows, cols = (256, 3) if kind == "group" else (2, 3)
    assert scales.shape == (rows, cols)
    expand = scales.repeat_interleave(128, dim=1)
    if kind == "block":
        expand = expand.repeat_interleave(128, dim=0)
    restored = q.float() * expand
    assert gemms.rel_diff(restored, x) < 1e-3
    # each block's largest element lands on E4M3's largest value
    blocks = q.float().abs().view(-1, 1 if kind == "group" else 128, 3, 128).amax(dim=(1, 3))
    assert torch.all(blocks == 448.0)


def test_a_machine_without_fp8_gemms_is_refused_with_the_reason(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gemms.main(["--backends", "per-tensor"]) == 2
    assert "need a CUDA GPU with FP8 tensor cores (Hopper or newer); none here" in capsys.readouterr().err
    assert gemms.main(["--backends", "cutlass"]) == 2
    assert (
        "unknown backend(s) cutlass; known: per-tensor, cublas-block, deepgemm, deepgemm-store, deepgemm-wide"
        in capsys.readouterr().err
    )
    assert gemms.main(["--passes", "wgrad,bwd"]) == 2
    assert "--passes 'wgrad,bwd': a comma-separated subset of fwd, dgrad, wgrad" in capsys.readouterr().err
