"""A Qwen2 decoder layer built from Transformer Engine's fused modules, and its HF weight mapping.

    input_layernorm + q/k/v      -> te.LayerNormLinear  (RMSNorm fused with the FP8 cast of its
                                                          output; one GEMM for q, k and v, with bias)
    RoPE + causal GQA attention  -> torch SDPA, the same kernel and code as the BF16 arm's HF layer
    o_proj                       -> te.Linear
    post_attention_layernorm + gate/up + SiLU(gate)*up + down
                                 -> te.LayerNormMLP (activation "swiglu"; RMSNorm and SwiGLU fused
                                                     with the casts; FP8 inputs saved for backward)

A plain nn.Linear -> te.Linear swap casts every input to FP8 separately and keeps BF16 copies
for backward; these modules fuse the norm and the activation with the casts, which is where
TE's speed and memory savings come from (TE's own Llama recipe does the same).

Weights are mapped from and back to the HF layout (`fused_from_hf`, `hf_from_fused`), so every
arm starts from the same initial weights and checkpoints/final/ is a plain HF folder. Those
functions and the layer's glue are pure torch: tests run the layer with stand-in modules on
CPU; `python -m harness.train.precision.selfcheck --device cuda` compares real TE with HF.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

# HF key suffix (inside model.layers.N.) -> fused key suffix; q/k/v and gate/up are concatenated.
NORM_KEYS = {
    "input_layernorm.weight": "qkv.layer_norm_weight",
    "post_attention_layernorm.weight": "mlp.layer_norm_weight",
    "self_attn.o_proj.weight": "proj.weight",
    "mlp.down_proj.weight": "mlp.fc2_weight",
}
QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
GATE_UP = ("mlp.gate_proj.weight", "mlp.up_proj.weight")  # TE's swiglu: silu(first half) * second half
_FUSED_KEY = re.compile(
    r"^(.*\blayers\.\d+\.)(qkv\.(layer_norm_weight|weight|bias)|proj\.weight|mlp\.(layer_norm_weight|fc[12]_weight)"
    r"|(qkv|proj|mlp)\._extra_state)$"
)


def fused_from_hf(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One decoder layer's state: HF names (q_proj.weight, ...) -> the fused layer's names."""
    out = {fused: hf[name] for name, fused in NORM_KEYS.items()}
    out["qkv.weight"] = torch.cat([hf[f"{p}.weight"] for p in QKV])
    out["qkv.bias"] = torch.cat([hf[f"{p}.bias"] for p in QKV])
    out["mlp.fc1_weight"] = torch.cat([hf[k] for k in GATE_UP])
    return out


def hf_from_fused(fused: dict[str, torch.Tensor], q_size: int, kv_size: int) -> dict[str, torch.Tensor]:
    """The inverse of fused_from_hf (TE's `_extra_state` entries are dropped)."""
    out = {name: fused[f] for name, f in NORM_KEYS.items()}
    for kind in ("weight", "bias"):
        for prefix, part in zip(QKV, fused[f"qkv.{kind}"].split([q_size, kv_size, kv_size]), strict=True):
            out[f"{prefix}.{kind}"] = part
    gate, up = fused["mlp.fc1_weight"].chunk(2)
    out.update({GATE_UP[0]: gate, GATE_UP[1]: up})
    return out


def unfuse_state(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A whole model's state dict with every fused layer's keys turned back into HF keys."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    q_size, kv_size = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = _FUSED_KEY.match(key)
        if match is None:
            out[key] = value
        elif not key.endswith("_extra_state"):
            fused.setdefault(match.group(1), {})[key[len(match.group(1)) :]] = value
    for prefix, layer in fused.items():
        out.update({prefix + k: v for k, v in hf_from_fused(layer, q_size, kv_size).items()})
    return out


def can_fuse(layer: nn.Module) -> bool:
    """A transformers Qwen2 decoder layer whose GEMM dimensions FP8 kernels accept (multiples of 16)."""
    if type(layer).__name__ != "Qwen2DecoderLayer":
        return False
    c = layer.self_attn.config
    dims = (c.hidden_size, c.intermediate_size, layer.self_attn.head_dim * c.num_key_value_heads)
    return all(d % 16 == 0 for d in dims)


class FusedQwen2DecoderLayer(GradientCheckpointingLayer):
    """Drop-in for transformers' Qwen2DecoderLayer (same call, same result) built from fused modules.

    `te` is transformer_engine.pytorch, or any namespace with LayerNormLinear, Linear and
    LayerNormMLP of the same signatures (the CPU tests pass plain-torch stand-ins). Like the HF
    layer it is a GradientCheckpointingLayer, so `model.activation_checkpointing` recomputes it
    exactly as it recomputes the BF16 arm's layers.
    """

    def __init__(self, config, te, *, device=None, dtype=torch.float32):
        super().__init__()
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        q, kv, hidden = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim, config.hidden_size
        common = dict(params_dtype=dtype, device=device)
        norm = dict(eps=config.rms_norm_eps, normalization="RMSNorm")
        self.qkv = te.LayerNormLinear(hidden, q + 2 * kv, bias=True, **norm, **common)
        self.proj = te.Linear(q, hidden, bias=False, **common)
        self.mlp = te.LayerNormMLP(hidden, config.intermediate_size, bias=False, activation="swiglu", **norm, **common)
        self._attend = self._attention

    @classmethod
    def from_hf(cls, layer: nn.Module, te) -> FusedQwen2DecoderLayer:
        """A fused layer carrying `layer`'s weights (same device and dtype)."""
        weight = layer.self_attn.q_proj.weight
        fused = cls(layer.self_attn.config, te, device=weight.device, dtype=weight.dtype)
        hf = {k: v.detach() for k, v in layer.state_dict().items()}
        missing, unexpected = fused.load_state_dict(fused_from_hf(hf), strict=False)
        if unexpected or any(not k.endswith("_extra_state") for k in missing):
            raise RuntimeError(f"fused layer weights do not match: missing {missing}, unexpected {unexpected}")
        return fused

    def compile(self, *args, **kwargs) -> None:
        """Compile the torch part (split, RoPE, attention); TE's modules run their own fused kernels."""
        self._attend = torch.compile(self._attention, *args, **kwargs)

    def _attention(self, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, segments=None) -> torch.Tensor:
        from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

        from harness.train.attention import causal_attention

        b, s, _ = qkv.shape
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        q, k, v = (
            t.view(b, s, -1, self.head_dim).transpose(1, 2) for t in qkv.split([q_size, kv_size, kv_size], dim=-1)
        )
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        # What transformers' layers run: causal SDPA, or for packed rows the same segment-wise kernel.
        out = causal_attention(q, k, v, self.scaling, segments)
        return out.transpose(1, 2).reshape(b, s, q_size)

    def forward(self, hidden_states: torch.Tensor, position_embeddings=None, attention_mask=None, **kwargs):
        if attention_mask is not None:
            # The trainer packs sequences under a plain causal mask; padding masks are not supported here.
            raise ValueError("FusedQwen2DecoderLayer supports causal attention without an attention mask only")
        cos, sin = position_embeddings
        attended = self._attend(self.qkv(hidden_states), cos, sin, kwargs.get("segments"))
        hidden_states = hidden_states + self.proj(attended)
        return hidden_states + self.mlp(hidden_states)
