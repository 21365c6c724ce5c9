"""deepgemm:blockwise on CPU: its GEMM custom ops run the reference there (dequantise, FP32 matmul),
so these tests check what the GPU shares with it: the 1x128 / 128x128 quantisation, the
transposes of the backward, the token padding of the weight gradient, what is kept for backward,
and that torch.compile traces the layer. DeepGEMM's kernels themselves are checked on the GPU
(scripts/gpu_deepgemm.sh). Tolerance: E4M3 keeps 3 mantissa bits, so each product carries up
to ~6% rounding per operand element; over k >= 256 terms the relative error of a whole GEMM
(DeepGEMM's calc_diff) stays below 1e-3 for Gaussian operands."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from harness.errors import InvalidInput
from harness.train.precision import deepgemm
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
