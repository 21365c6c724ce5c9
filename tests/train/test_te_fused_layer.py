"""The TE fused Qwen2 layer's glue, on CPU: weight mapping, forward/backward equivalence, HF export.

Transformer Engine needs a GPU, so the layer is built here with plain-torch stand-ins that follow
TE's documented semantics (LayerNormLinear = RMSNorm then Linear; LayerNormMLP with "swiglu" =
RMSNorm, fc1, silu(first half) * second half, fc2). What is tested is our part: the q/k/v and
gate/up packing, RoPE and grouped-query attention, the residuals, and the way back to HF names.
`python -m harness.train.precision.selfcheck --device cuda` checks real TE against HF.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainkit import qwen2_model
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from harness.recipes import parse
from harness.train.export import export_final
from harness.train.model import apply_runtime_options
from harness.train.precision.te import TEBackend
from harness.train.precision.te_layer import (
    FusedQwen2DecoderLayer,
    can_fuse,
    fused_from_hf,
    hf_from_fused,
    unfuse_state,
)


class _Linear(nn.Module):
    def __init__(self, n_in, n_out, bias=True, params_dtype=torch.float32, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=params_dtype, device=device))
        self.bias = nn.Parameter(torch.empty(n_out, dtype=params_dtype, device=device)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class _LayerNormLinear(_Linear):
    def __init__(self, n_in, n_out, bias=True, eps=1e-5, normalization="LayerNorm", **common):
        assert normalization == "RMSNorm"
        super().__init__(n_in, n_out, bias, **common)
        self.eps = eps
        self.layer_norm_weight = nn.Parameter(torch.ones(n_in, dtype=common["params_dtype"]))

    def forward(self, x):
        return super().forward(F.rms_norm(x, x.shape[-1:], self.layer_norm_weight, self.eps))


class _LayerNormMLP(nn.Module):
    def __init__(self, hidden, ffn, eps=1e-5, bias=True, normalization="LayerNorm", activation="gelu", **common):
        assert (normalization, activation, bias) == ("RMSNorm", "swiglu", False)
        super().__init__()
        dtype = common["params_dtype"]
        self.eps = eps
        self.layer_norm_weight = nn.Parameter(torch.ones(hidden, dtype=dtype))
        self.fc1_weight = nn.Parameter(torch.empty(2 * ffn, hidden, dtype=dtype))
        self.fc2_weight = nn.Parameter(torch.empty(hidden, ffn, dtype=dtype))

    def forward(self, x):
        h = F.linear(F.rms_norm(x, x.shape[-1:], self.layer_norm_weight, self.eps), self.fc1_weight)
        gate, up = h.chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, self.fc2_weight)


STAND_IN_TE = types.SimpleNamespace(LayerNormLinear=_LayerNormLinear, Linear=_Linear, LayerNormMLP=_LayerNormMLP)
CONFIG = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False, use_cache=False)  # fmt: skip


def _model(seed: int = 0) -> Qwen2ForCausalLM:
    return qwen2_model(CONFIG, seed)


def _fuse(model: Qwen2ForCausalLM) -> Qwen2ForCausalLM:
    layers = model.model.layers
    for i, layer in enumerate(layers):
        assert can_fuse(layer)
        layers[i] = FusedQwen2DecoderLayer.from_hf(layer, STAND_IN_TE)
    return model


def test_weight_mapping_round_trips_every_tensor_of_a_layer():
    hf = {k: v for k, v in _model().model.layers[0].state_dict().items()}
    back = hf_from_fused(fused_from_hf(hf), q_size=64, kv_size=32)
    assert back.keys() == hf.keys()
    for key in hf:
        assert torch.equal(back[key], hf[key]), key


def test_fused_model_matches_the_hf_model_in_loss_and_gradients():
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(1))
    reference, fused = _model(), _fuse(_model())
    ref_loss = reference(input_ids=ids, labels=ids).loss
    fused_loss = fused(input_ids=ids, labels=ids).loss
    ref_loss.backward()
    fused_loss.backward()
    torch.testing.assert_close(fused_loss, ref_loss, rtol=1e-5, atol=1e-6)
    ref_grads = hf_from_fused(
        {k: p.grad for k, p in fused.model.layers[1].named_parameters()}, q_size=64, kv_size=32
    )  # the fused layer's gradients, in HF names
    for name, p in reference.model.layers[1].named_parameters():
        torch.testing.assert_close(ref_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(fused.model.embed_tokens.weight.grad, reference.model.embed_tokens.weight.grad)


def test_activation_checkpointing_recomputes_the_fused_layers_with_the_same_gradients():
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(3))
    plain, checkpointed = _fuse(_model()), _fuse(_model())
    apply_runtime_options(checkpointed, types.SimpleNamespace(activation_checkpointing=True, compile=False))
    assert all(layer.gradient_checkpointing for layer in checkpointed.model.layers)  # as for the BF16 arm's layers
    for model in (plain, checkpointed):
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


def test_compiling_the_fused_layer_keeps_its_output():
    x = torch.randn(2, 16, 64)
    layer = _fuse(_model()).model.layers[0]
    rotary = _model().model.rotary_emb
    cos_sin = rotary(x, torch.arange(16).unsqueeze(0).expand(2, -1))
    eager = layer(x, position_embeddings=cos_sin)
    layer.compile(backend="eager")  # the glue runs through dynamo; TE modules would stay outside
    torch.testing.assert_close(layer(x, position_embeddings=cos_sin), eager)


def test_fused_model_exports_a_plain_hf_checkpoint_with_the_same_outputs(tmp_path, tiny_tokenizer):
    ids = torch.randint(0, CONFIG["vocab_size"], (1, 20), generator=torch.Generator().manual_seed(2))
    fused = _fuse(_model())
    # The TE backend's export hook maps its fused layers back; checkpoint code knows no backend.
    export_final(
        tmp_path / "final", fused, tiny_tokenizer, torch.float32, TEBackend(parse("te:blockwise")).export_state
    )
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "final", dtype=torch.float32)
    assert type(loaded.model.layers[0]).__name__ == "Qwen2DecoderLayer"
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, fused(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_layers_fp8_kernels_cannot_take_are_left_alone():
    config = Qwen2Config(**{**CONFIG, "intermediate_size": 100})  # 100 is not a multiple of 16
    config._attn_implementation = "sdpa"
    assert not can_fuse(Qwen2ForCausalLM(config).model.layers[0])
    assert not can_fuse(nn.Linear(16, 16))


def test_an_attention_mask_is_refused_rather_than_ignored():
    layer = _fuse(_model()).model.layers[0]
    x = torch.randn(1, 8, 64)
    cos_sin = _model().model.rotary_emb(x, torch.arange(8).unsqueeze(0))
    with pytest.raises(ValueError, match="attention mask"):
        layer(x, position_embeddings=cos_sin, attention_mask=torch.ones(1, 1, 8, 8, dtype=torch.bool))


def test_unfusing_leaves_hf_layers_and_other_weights_untouched():
    state = _model().state_dict()
    assert unfuse_state(state, _model().config) == state


def test_fused_layers_attend_within_packed_segments_like_the_hf_layers():
    from harness.train import attention

    ids = torch.randint(0, CONFIG["vocab_size"], (1, 30), generator=torch.Generator().manual_seed(4))
    positions = torch.cat([torch.arange(n) for n in (12, 7, 11)]).unsqueeze(0)
    segments = attention.Segments.of((12, 7, 11), "cpu")
    reference, fused = _model(), _model()
    for model in (reference, fused):
        attention.use(model)  # as the trainer does before any precision backend converts the model
    fused = _fuse(fused)
    ref = reference(input_ids=ids, labels=ids, position_ids=positions, segments=segments)
    out = fused(input_ids=ids, labels=ids, position_ids=positions, segments=segments)
    torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-5)
    alone = reference(input_ids=ids[:, 12:19]).logits  # the second conversation by itself
    torch.testing.assert_close(out.logits[:, 12:19], alone, rtol=1e-5, atol=1e-5)
