import pytest
import torch
from torch import nn

from harness.suite import ModelConfig
from harness.train.model import build_model
from harness.train.precision.emulated import E4M3, E5M2, RECIPES, EmulatedFP8Linear, quantize_dequantize
from harness.train.precision.registry import get_backend


@pytest.mark.parametrize("block", [None, (1, 10**9), (1, 128), (128, 128)])
def test_e4m3_round_trip_error_is_within_half_an_ulp_of_3_mantissa_bits(block):
    torch.manual_seed(0)
    x = torch.randn(200, 300)
    q = quantize_dequantize(x, E4M3, block, pow2=True)
    normal = x.abs() > x.abs().max() * 2**-6  # far from the subnormal range in every block
    rel = ((q - x).abs() / x.abs())[normal]
    assert rel.max() <= 2**-4 + 1e-6  # 3 mantissa bits: relative rounding error <= 2^-4
    assert rel.mean() > 1e-3  # it really quantised


def test_e5m2_is_coarser_than_e4m3():
    x = torch.randn(64, 64)
    err4 = (quantize_dequantize(x, E4M3, None, False) - x).norm()
    err5 = (quantize_dequantize(x, E5M2, None, False) - x).norm()
    assert err5 > 1.5 * err4


def test_block_scales_isolate_an_outlier_that_per_tensor_scaling_does_not():
    x = torch.randn(128, 256) * 1e-3
    x[0, 0] = 1e4  # outlier in the first 1x128 block only
    tensor = quantize_dequantize(x, E4M3, None, False)
    block = quantize_dequantize(x, E4M3, (1, 128), True)
    rest = (slice(1, None), slice(None))
    assert (tensor[rest] == 0).float().mean() > 0.9  # flushed to zero by the outlier's scale
    assert (block[rest] - x[rest]).norm() / x[rest].norm() < 0.05  # the other blocks keep their precision


def test_power_of_two_scales_leave_values_exact_when_representable():
    x = torch.tensor([[1.0, 0.5, -2.0, 448.0]])
    assert torch.equal(quantize_dequantize(x, E4M3, (1, 128), True), x)


@pytest.mark.parametrize("mode", list(RECIPES))
def test_gradients_flow_and_stay_close_to_a_bf16_linear(mode):
    torch.manual_seed(0)
    ref = nn.Linear(256, 192, bias=True)
    emu = EmulatedFP8Linear.from_linear(nn.Linear(256, 192, bias=True), RECIPES[mode])
    with torch.no_grad():
        emu.weight.copy_(ref.weight)
        emu.bias.copy_(ref.bias)
    x = torch.randn(4, 64, 256)
    y_ref, y = ref(x), emu(x)
    y_ref.pow(2).sum().backward()
    y.float().pow(2).sum().backward()
    assert ((y.float() - y_ref).norm() / y_ref.norm()) < 0.06
    for got, want in ((emu.weight.grad, ref.weight.grad), (emu.bias.grad, ref.bias.grad)):
        assert got is not None and got.abs().sum() > 0
        assert (got - want).norm() / want.norm() < 0.1


def test_emulated_backend_converts_only_decoder_linears_and_keeps_state_dict_keys():
    model = build_model(ModelConfig(preset="tiny"), 512, seed=0)
    keys = set(model.state_dict())
    weight = model.model.layers[0].mlp.up_proj.weight
    model = get_backend("emulated:block").convert(model)
    swapped = [m for m in model.modules() if isinstance(m, EmulatedFP8Linear)]
    assert len(swapped) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers
    assert type(model.lm_head) is nn.Linear and not isinstance(model.model.embed_tokens, EmulatedFP8Linear)
    assert set(model.state_dict()) == keys
    assert model.model.layers[0].mlp.up_proj.weight is weight  # same Parameter: shared init, optimiser sees it
