"""+swiglu8: SwiGLU inputs kept for backward in FP8 (harness/train/precision/swiglu8.py)."""

import pytest
import torch
import torch.nn.functional as F
from trainkit import losses, prepare, specs, tiny_suite

from harness.errors import InvalidInput
from harness.train.precision.registry import get_backend
from harness.train.precision.swiglu8 import (
    E4M3,
    SwiGLUSavedFP8MLP,
    dequantize_blocks,
    quantize_blocks,
    swiglu_saved_fp8,
)
from harness.train.trainer import train


@pytest.mark.parametrize("n", [256, 200])  # 200: padded to two blocks of 128
def test_block_round_trip_error_is_within_3_mantissa_bits_and_zeros_stay_zero(n):
    torch.manual_seed(0)
    x = torch.randn(3, 5, n) * torch.logspace(-3, 3, n)  # every block has its own range
    x[0, 0] = 0.0
    q, scale = quantize_blocks(x)
    assert q.dtype == E4M3 and scale.dtype == torch.float32
    assert q.shape == (3, 5, -(-n // 128), 128) and scale.shape == (3, 5, -(-n // 128), 1)
    back = dequantize_blocks(q, scale, n)
    assert back.shape == x.shape and torch.equal(back[0, 0], torch.zeros(n))
    blocks = F.pad(x, (0, -n % 128)).reshape(3, 5, -1, 128)
    normal = (blocks.abs() > blocks.abs().amax(-1, keepdim=True) * 2**-6).reshape(3, 5, -1)[..., :n]
    rel = ((back - x).abs() / x.abs())[normal]
    assert rel.max() <= 2**-4 + 1e-6 and rel.mean() > 1e-3  # it really rounded, to E4M3's precision


def _reference(gate, up):
    g, u = gate.detach().float().requires_grad_(), up.detach().float().requires_grad_()
    return g, u, F.silu(g) * u


def test_forward_is_bit_identical_and_gradients_carry_only_fp8_rounding():
    torch.manual_seed(0)
    gate = torch.randn(4, 64, 384, dtype=torch.bfloat16, requires_grad=True)
    up = torch.randn(4, 64, 384, dtype=torch.bfloat16, requires_grad=True)
    out = swiglu_saved_fp8(gate, up)
    assert out.dtype == torch.bfloat16 and torch.equal(out, F.silu(gate) * up)
    dy = torch.randn_like(out)
    out.backward(dy)
    g, u, ref = _reference(gate, up)
    ref.backward(dy.float())
    for got, want in ((gate.grad, g.grad), (up.grad, u.grad)):
        assert got.dtype == torch.bfloat16
        err = (got.float() - want).norm() / want.norm()
        assert 0.01 < err < 0.04, err  # E4M3 inputs: about 3% here (BF16 autograd's own: 0.24%)


def test_backward_keeps_fp8_tensors_about_a_third_of_the_bytes_of_bf16_autograd():
    saved = {}

    def keep(tag):
        def pack(t):
            saved.setdefault(tag, []).append(t)
            return t

        return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)

    gate = torch.randn(8, 1024, dtype=torch.bfloat16, requires_grad=True)
    up = torch.randn(8, 1024, dtype=torch.bfloat16, requires_grad=True)
    with keep("plain"):
        F.silu(gate) * up
    with keep("fp8"):
        swiglu_saved_fp8(gate, up)

    def nbytes(tag):
        return sum(t.numel() * t.element_size() for t in saved[tag])

    assert {t.dtype for t in saved["fp8"]} == {E4M3, torch.float32}
    assert nbytes("plain") == 3 * 8 * 1024 * 2  # eager autograd: gate, silu(gate) and up in BF16
    assert nbytes("fp8") == 2 * (8 * 1024 + 8 * 8 * 4)  # gate and up, a byte each, plus an FP32 scale per 128
    assert nbytes("fp8") / nbytes("plain") < 0.35


def test_emulated_swiglu8_swaps_every_mlp_keeps_hf_parameter_names_and_refuses_other_activations():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, use_cache=False)  # fmt: skip
    torch.manual_seed(0)
    plain = Qwen2ForCausalLM(config)
    keys = list(plain.state_dict())
    model = get_backend("emulated:tensor+swiglu8").convert(plain)
    assert all(isinstance(layer.mlp, SwiGLUSavedFP8MLP) for layer in model.model.layers)
    assert list(model.state_dict()) == keys
    config.hidden_act = "gelu"
    with pytest.raises(InvalidInput, match=r"emulated:tensor\+swiglu8: the MLP activation is GELUActivation, not SiLU"):
        get_backend("emulated:tensor+swiglu8").convert(Qwen2ForCausalLM(config))


def test_a_swiglu8_arm_trains_the_same_first_loss_as_its_base_recipe_and_exports_hf_weights(tmp_path, corpus):
    from transformers import AutoModelForCausalLM

    suite = tiny_suite(str(corpus), arms={"base": "emulated:tensor", "s8": "emulated:tensor+swiglu8"}, steps=6,
                       checkpoint_every=None)  # fmt: skip
    curves = {}
    for spec in specs(suite).values():
        run_dir = prepare(tmp_path, spec)
        assert train(spec, run_dir, quiet=True)["status"] == "completed"
        curves[spec.arm] = losses(run_dir)
    assert curves["s8"][0] == curves["base"][0]  # same weights, same batch, identical forward
    assert curves["s8"][1:] != curves["base"][1:]  # the gradients saw FP8-rounded SwiGLU inputs
    assert max(abs(a - b) / b for a, b in zip(curves["s8"], curves["base"], strict=True)) < 0.01
    final = tmp_path / "t" / "cpt-s8-s0" / "checkpoints" / "final"
    assert AutoModelForCausalLM.from_pretrained(str(final), local_files_only=True).model.layers[0].mlp.up_proj


def test_torchao_swiglu8_refuses_on_cpu_naming_the_emulated_swiglu8_fallback():
    with pytest.raises(InvalidInput, match=r"use emulated:tensor\+swiglu8 on CPU"):
        get_backend("torchao:tensorwise+swiglu8").check_available(torch.device("cpu"))


def test_under_torch_compile_backward_still_keeps_the_fp8_copies_not_bf16_gate_and_up():
    # What the compiled decoder layers of a real run keep: the forward graph's extra outputs after
    # Inductor's own partitioner (min-cut recomputation) split forward from backward.
    import functools

    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func
    from torch._functorch.partitioners import min_cut_rematerialization_partition
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP

    tokens, width = 64, 256

    def kept_for_backward(mlp):
        kept = []

        def forward_compiler(gm, _inputs):
            outputs = next(n for n in gm.graph.nodes if n.op == "output").args[0]
            kept.extend(n.meta["val"] for n in outputs[1:])  # outputs[0] is the MLP's output
            return make_boxed_func(gm.forward)

        backend = aot_autograd(
            fw_compiler=forward_compiler, bw_compiler=lambda gm, _inputs: make_boxed_func(gm.forward),
            partition_fn=functools.partial(min_cut_rematerialization_partition, compiler="inductor"),
        )  # fmt: skip
        torch._dynamo.reset()
        x = torch.randn(tokens, 128, dtype=torch.bfloat16, requires_grad=True)
        torch.compile(mlp, backend=backend)(x).sum().backward()
        return [(t.dtype, tuple(t.shape)) for t in kept]

    torch.manual_seed(0)
    mlp = Qwen2MLP(Qwen2Config(hidden_size=128, intermediate_size=width, hidden_act="silu")).to(torch.bfloat16)
    plain = kept_for_backward(mlp)
    fp8 = kept_for_backward(SwiGLUSavedFP8MLP(mlp))
    wide_bf16 = (torch.bfloat16, (tokens, width))
    assert plain.count(wide_bf16) == 3  # gate, up and silu(gate) * up
    assert fp8.count(wide_bf16) == 1  # only silu(gate) * up, down_proj's input
    assert fp8.count((E4M3, (tokens, width // 128, 128))) == 2  # gate and up in FP8
