"""benchmarks.memory's accounting of what autograd keeps for the backward (the GPU numbers in
docs/PERFORMANCE.md rest on it); checked on CPU, where no timing or CUDA statistic is involved."""

from __future__ import annotations

import torch
from benchkit import load_benchmark_module
from torch import nn

saved_tensor_bytes = load_benchmark_module("memory").saved_tensor_bytes


def test_counts_autocast_copies_but_not_parameters_or_input():
    linear = nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64, requires_grad=True)
    with saved_tensor_bytes([*linear.parameters(), x]) as saved, torch.autocast("cpu", dtype=torch.bfloat16):
        y = linear(x)
    # BF16 autocast saves its BF16 copies of the input and the weight; the FP32 originals are excluded.
    assert dict(saved) == {"bfloat16": (8 * 64 + 32 * 64) * 2}
    y.float().sum().backward()  # the hooks hand the tensors back unchanged
    assert linear.weight.grad is not None and x.grad.shape == x.shape


def test_a_tensor_saved_twice_counts_once_and_fp32_activations_count():
    x = torch.randn(16, 16, requires_grad=True)
    with saved_tensor_bytes([x]) as saved:
        h = x * 2  # saves nothing of its own (constant factor)
        y = (h * h).sum()  # saves h twice: one storage
    assert dict(saved) == {"float32": 16 * 16 * 4}
    y.backward()
    assert torch.allclose(x.grad, 8 * x)


def test_the_mlp_benchmark_case_is_converted_like_a_decoder_layers_mlp():
    # So `nox -s bench` times the FP8-saving MLP under +swiglu8, and HF's under every other recipe.
    from harness.train.precision.registry import get_backend
    from harness.train.precision.swiglu8 import SwiGLUSavedFP8MLP

    cases = load_benchmark_module("cases")
    shape = cases.Shape("qwen2.5-1.5b", batch=1, seq_len=8)
    kinds = {}
    for recipe in ("emulated:tensor", "emulated:tensor+swiglu8"):
        block, call = cases._block("mlp", shape, torch.device("cpu"))
        layer = get_backend(recipe).convert(cases._holder(block.float())).model.layers[0]
        x = torch.randn(1, 8, 1536, requires_grad=True)
        call(layer, x).sum().backward()
        kinds[recipe] = type(layer.mlp)
        assert x.grad is not None and layer.mlp.down_proj.weight.grad is not None
    assert kinds["emulated:tensor+swiglu8"] is SwiGLUSavedFP8MLP
    assert kinds["emulated:tensor"] is not SwiGLUSavedFP8MLP


def test_kernel_profile_groups_kernels_by_kind_and_profiles_a_layer_step():
    kernels = load_benchmark_module("kernels")
    assert kernels.kind_of("sm90_xmma_gemm_e4m3bf16_e4m3f32_f32_tn_n_tilesize128x128x128") == "gemm"
    assert kernels.kind_of("nvte::quantize_transpose_square_blockwise_kernel") == "fp8 cast/transpose"
    assert kernels.kind_of("flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel") == "attention"
    assert kernels.kind_of("triton_poi_fused_add_mul_0") == "inductor fused"
    # Inductor names a kernel after the ops it fuses: one feeding _scaled_mm is a cast, not a GEMM.
    assert kernels.kind_of("triton_poi_fused__scaled_mm__to_copy_clamp_mul_reciprocal_t_view_22") == "inductor fused"
    assert kernels.kind_of("triton_red_fused_abs_max_mul_silu_view_4") == "inductor fused"
    assert kernels.kind_of("triton_tem_fused_mm_0") == "gemm"
    assert kernels.kind_of("void at::native::vectorized_elementwise_kernel<4, CUDAFunctor_add<float>>") == "other"
    summary = kernels.summarize([("gemm_a", 3000.0, 4), ("cast_b", 1000.0, 2), ("misc", 500.0, 2)], steps=2)
    assert summary["per_step_ms"] == {"gemm": 1.5, "fp8 cast/transpose": 0.5, "other": 0.25}
    assert summary["total_ms"] == 2.25 and summary["top"][0]["calls_per_step"] == 2

    # End to end on this CPU (the profiler's CPU op times stand in for kernels): one decoder layer.
    from harness.train.precision.registry import get_backend

    cases = load_benchmark_module("cases")
    shape = cases.Shape("qwen2.5-1.5b", batch=1, seq_len=16)
    timed = cases.layer_step("decoder_layer", shape, get_backend("bf16"), torch.device("cpu"), compile=False)
    result = kernels.profile_step(timed, torch.device("cpu"), steps=1, warmup=1)
    assert result["per_step_ms"]["gemm"] > 0 and result["top"]
    assert abs(sum(result["per_step_ms"].values()) - result["total_ms"]) < 1e-9
    # Every kernel is kept, not only the top ones, so a saved profile can be regrouped later.
    assert abs(sum(k["us_per_step"] for k in result["kernels"]) / 1e3 - result["total_ms"]) < 1e-9
