"""deepgemm:blockwise on CPU: its GEMM custom ops run the reference there (dequantise, FP32 matmul),
so these tests check what the GPU shares with it: the 1x128 / 128x128 quantisation, the
transposes of the backward, the token padding of the weight gradient, what is kept for backward,
and that torch.compile traces the layer. DeepGEMM's kernels themselves are checked on the GPU
(scripts/gpu_deepgemm.sh). Tolerance: E4M3 keeps 3 mantissa bits, so each product carries up
to ~6% rounding per operand element; over k >= 256 terms the relative error of a whole GEMM
(DeepGEMM's calc_diff) stays below 1e-3 for Gaussian operands."""

from __future__ import annotations

import copy
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from trainkit import qwen2_model
from transformers import Qwen2Config, Qwen2ForCausalLM

from harness.errors import InvalidInput
from harness.train.model import apply_runtime_options
from harness.train.precision import deepgemm, deepgemm_ops
from harness.train.precision.base import decoder_linears
from harness.train.precision.registry import get_backend


def rel_diff(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float(1 - 2 * (a * b).sum() / ((a * a).sum() + (b * b).sum()))


def _pair(tokens=200, inp=256, out=384):
    torch.manual_seed(0)
    exact = torch.nn.Linear(inp, out)
    fp8 = deepgemm.DeepGEMMLinear.from_linear(torch.nn.Linear(inp, out))
    fp8.load_state_dict(exact.state_dict())
    x = torch.randn(2, tokens // 2, inp)
    return exact, fp8, x


def test_forward_and_all_three_gradients_match_the_exact_linear_within_fp8_rounding():
    exact, fp8, x = _pair()  # 200 tokens: the weight gradient pads them to 256
    grad = torch.randn(2, 100, 384)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = exact(xa), fp8(xb)
    ya.backward(grad)
    yb.backward(grad)
    assert yb.shape == ya.shape
    assert rel_diff(yb, ya) < 1e-3
    assert rel_diff(xb.grad, xa.grad) < 1e-3  # dgrad: W's 128x128 blocks transposed
    assert rel_diff(fp8.weight.grad, exact.weight.grad) < 1e-3  # wgrad: 1x128 groups along the tokens
    torch.testing.assert_close(fp8.bias.grad, exact.bias.grad, rtol=1e-5, atol=1e-5)


def test_the_backward_keeps_only_fp8_data_and_small_scales():
    _, fp8, x = _pair(tokens=256)
    x.requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fp8(x)
    full = [t for t in saved if t.dtype != torch.float8_e4m3fn]
    assert any(t.dtype == torch.float8_e4m3fn and t.numel() == x.numel() for t in saved)  # x^T along tokens
    # scales only: one FP32 per 128 elements, nothing the size of x or W in high precision
    assert sum(t.numel() for t in full) <= (x.numel() + fp8.weight.numel()) // 128 * 2


def test_compiled_layers_trace_the_gemm_custom_ops_and_match_eager():
    _, fp8, x = _pair(tokens=256)
    compiled = torch.compile(fp8, backend="aot_eager", fullgraph=True)  # a graph break would raise
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    fp8(xa).sum().backward()
    eager_grad = fp8.weight.grad.clone()
    fp8.weight.grad = None
    compiled(xb).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)
    torch.testing.assert_close(fp8.weight.grad, eager_grad)


def test_convert_swaps_the_decoder_linears_whose_sizes_the_kernels_take():
    config = Qwen2Config(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    model = get_backend("deepgemm:blockwise").convert(Qwen2ForCausalLM(config))
    swapped = {name for name, m in model.named_modules() if isinstance(m, deepgemm.DeepGEMMLinear)}
    layer = "model.layers.0"
    # k and v project to one head of 64: not a multiple of 128, so they stay BF16; lm_head always does
    assert swapped == {f"{layer}.self_attn.q_proj", f"{layer}.self_attn.o_proj", f"{layer}.mlp.gate_proj",
                       f"{layer}.mlp.up_proj", f"{layer}.mlp.down_proj"}  # fmt: skip
    loss = model(input_ids=torch.randint(0, 64, (1, 256)), labels=torch.randint(0, 64, (1, 256))).loss
    loss.backward()
    assert torch.isfinite(loss) and model.model.layers[0].mlp.down_proj.weight.grad.abs().sum() > 0


def test_off_hopper_the_recipe_is_refused_with_its_emulated_twin():
    with pytest.raises(InvalidInput) as refused:
        get_backend("deepgemm:blockwise").check_available(torch.device("cpu"))
    assert "deepgemm:blockwise needs an NVIDIA GPU with FP8 support (Hopper or newer) and DeepGEMM" in str(
        refused.value
    )
    assert "use emulated:block on CPU" in str(refused.value)


# head_dim 64 with two query and two key/value heads: q, k and v 128 wide each, so the layers fuse
FUSABLE = dict(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
               num_key_value_heads=2, tie_word_embeddings=False)  # fmt: skip


def _fusable_model() -> Qwen2ForCausalLM:
    return qwen2_model(FUSABLE)


def test_qwen2_layers_become_fused_layers_that_export_the_same_hf_weights():
    reference = _fusable_model()
    backend = get_backend("deepgemm:blockwise")
    converted = backend.convert(copy.deepcopy(reference))
    assert all(isinstance(layer, deepgemm.DeepGEMMDecoderLayer) for layer in converted.model.layers)
    layer = converted.model.layers[0]
    assert layer.qkv.weight.shape == (384, 128) and layer.mlp.fc1_weight.shape == (512, 128)  # q/k/v, gate/up as one
    exported = backend.export_state(converted.state_dict(), converted.config)
    want = reference.state_dict()
    assert exported.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(exported[key], value), key


def test_fused_layers_compute_what_the_recipe_computes_linear_by_linear():
    # The same FP8 numerics with q/k/v and gate/up fused: every gradient as with one DeepGEMMLinear per
    # projection (the 128x128 weight blocks never straddle two projections), up to where the fused
    # MLP quantises silu(gate) * up and its gradient from FP32 rather than from BF16 tensors.
    ids = torch.randint(0, 64, (2, 128), generator=torch.Generator().manual_seed(1))
    exact, linear_by_linear = _fusable_model(), _fusable_model()
    for parent, attr, linear in list(decoder_linears(linear_by_linear)):
        setattr(parent, attr, deepgemm.DeepGEMMLinear.from_linear(linear))
    backend = get_backend("deepgemm:blockwise")
    fused = backend.convert(_fusable_model())
    losses = [model(input_ids=ids, labels=ids).loss for model in (exact, linear_by_linear, fused)]
    for loss in losses:
        loss.backward()
    assert abs(float(losses[2] - losses[0])) < 2e-3 * float(losses[0])  # FP8 against FP32
    assert abs(float(losses[2] - losses[1])) < 2e-4 * float(losses[0])
    grads = backend.export_state({k: p.grad for k, p in fused.named_parameters()}, fused.config)
    for name, p in linear_by_linear.named_parameters():
        assert rel_diff(grads[name], p.grad) < 1e-3, name  # q/k/v and gate/up split back into HF's names


def test_the_swiglu_mlp_matches_the_exact_mlp_and_keeps_only_h_in_bf16():
    torch.manual_seed(0)
    x = torch.randn(200, 256)  # 200 tokens: x^T and the activation's transpose are padded to 256
    w1, w2 = torch.randn(768, 256) / 16, torch.randn(256, 384) / 20  # [gate | up] 2 x 384; down 384 -> 256
    grad = torch.randn(200, 256)
    xa, w1a, w2a = (t.clone().requires_grad_() for t in (x, w1, w2))
    gate, up = (xa @ w1a.t()).chunk(2, dim=1)
    exact = (F.silu(gate) * up) @ w2a.t()
    exact.backward(grad)
    xb, w1b, w2b = (t.clone().requires_grad_() for t in (x, w1, w2))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = deepgemm_ops.fp8_swiglu_mlp(xb, w1b, w2b)
    y.backward(grad)
    # two quantised GEMMs in a row (and BF16 outputs): each contributes its ~1e-3
    assert rel_diff(y, exact) < 4e-3
    for got, want in ((xb.grad, xa.grad), (w1b.grad, w1a.grad), (w2b.grad, w2a.grad)):
        assert rel_diff(got, want) < 4e-3
    # besides FP8 data and scales (one FP32 per 128 values), only h = [gate | up] is kept: in BF16
    wide = [t for t in saved if t.dtype != torch.float8_e4m3fn and t.numel() > (x.numel() + w1.numel()) // 64]
    assert [(t.dtype, tuple(t.shape)) for t in wide] == [(torch.bfloat16, (200, 768))]


def test_weight_gradients_come_out_in_the_weights_dtype():
    layer = deepgemm.DeepGEMMLinear.from_linear(torch.nn.Linear(256, 128, dtype=torch.bfloat16))
    x = torch.randn(256, 256, dtype=torch.bfloat16, requires_grad=True)
    layer(x).float().sum().backward()
    assert layer.weight.grad.dtype == torch.bfloat16 and layer.bias.grad.dtype == torch.bfloat16


def test_the_fused_layer_compiles_whole_and_matches_eager():
    model = get_backend("deepgemm:blockwise").convert(_fusable_model())
    layer = model.model.layers[0]
    x = torch.randn(2, 128, 128)
    cos_sin = model.model.rotary_emb(x, torch.arange(128).unsqueeze(0).expand(2, -1))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    layer(xa, position_embeddings=cos_sin).sum().backward()
    eager_grad = layer.mlp.fc1_weight.grad.clone()
    layer.zero_grad()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)  # a graph break would raise
    compiled(xb, position_embeddings=cos_sin).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)
    torch.testing.assert_close(layer.mlp.fc1_weight.grad, eager_grad)
    # the runtime option compiles the whole layer, as the BF16 arm's (TE's layer compiles its attention only)
    apply_runtime_options(model, types.SimpleNamespace(activation_checkpointing=False, compile=True))
    assert all(layer._compiled_call_impl is not None for layer in model.model.layers)


def test_a_deepgemm_without_the_wgrad_patch_is_refused_naming_the_patch(monkeypatch):
    backend = get_backend("deepgemm:blockwise")
    monkeypatch.setattr(deepgemm, "require_gpu", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(deepgemm, "_nvcc", lambda: "/usr/local/cuda/bin/nvcc")
    unpatched = types.ModuleType("deep_gemm")
    unpatched.__file__ = "/tmp/DG/deep_gemm/__init__.py"
    unpatched.wgrad_gemm_fp8_fp8_fp32_nt = lambda lhs, rhs, out: None  # DeepGEMM 3fc6728's own signature
    monkeypatch.setitem(sys.modules, "deep_gemm", unpatched)
    with pytest.raises(InvalidInput, match="lacks scripts/deepgemm-wgrad-store.patch"):
        backend.check_available(torch.device("cuda"))
    unpatched.wgrad_gemm_fp8_fp8_fp32_nt = lambda lhs, rhs, out, accumulate=True: None
    backend.check_available(torch.device("cuda"))


def test_bf16_weight_gradients_take_the_wide_tile_where_the_staged_deepgemm_has_it():
    def store_only(lhs, rhs, out, accumulate=True):  # deepgemm-wgrad-store.patch alone
        pass

    def with_wide_tile(lhs, rhs, out, accumulate=True, wide_tile=False):  # and deepgemm-wgrad-wide.patch
        pass

    assert deepgemm_ops.wgrad_options(store_only, torch.bfloat16) == {"accumulate": False}
    assert deepgemm_ops.wgrad_options(with_wide_tile, torch.bfloat16) == {"accumulate": False, "wide_tile": True}
    # FP32 master weights get FP32 gradients: the wide tile is for BF16 outputs only
    assert deepgemm_ops.wgrad_options(with_wide_tile, torch.float32) == {"accumulate": False}


def test_the_cpu_reference_multiplies_in_fp32_under_autocast_as_deepgemm_accumulates():
    # an eager custom op runs under its caller's autocast: the reference's matmuls must not turn BF16 there
    # (they did, and a compiled layer, whose graph traces autocast away, then differed from the eager one)
    torch.manual_seed(0)
    layer = deepgemm.DeepGEMMLinear.from_linear(torch.nn.Linear(256, 256, dtype=torch.bfloat16))
    x = torch.randn(256, 256, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = layer(x)
    torch.testing.assert_close(under_autocast, layer(x), rtol=0, atol=0)
