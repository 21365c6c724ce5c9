"""deepgemm:blockwise's Qwen2 decoder layer: te_layer's fused layout with DeepGEMM's GEMMs.

The layer is te_layer.FusedQwen2DecoderLayer (its attention, residuals and HF weight mapping), built
from the three modules below in place of Transformer Engine's, with the signatures and parameter
names TE's have:

    LayerNormLinear  RMSNorm, then q/k/v as one block-scaled GEMM (one quantisation of the normed input,
                     one input gradient instead of three summed; the k and v GEMMs alone are too
                     narrow, 512 columns at 7B, to run at the GEMM's rate)
    Linear           o_proj
    LayerNormMLP     RMSNorm, then gate/up as one GEMM, SwiGLU and down (deepgemm._DeepGEMMSwiGLUMLP:
                     the activation fused with the quantisations before and after it)

A 128x128 weight block of the fused q/k/v or gate/up weight never straddles two projections when each
projection's size is a multiple of 128, which `can_fuse_blocks` requires, so the FP8 numerics are those
of the projections quantised apart. Unlike TE's layer, this one is compiled whole (Inductor traces the
custom ops), as the BF16 arm's layer is.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from harness.train.precision.blockquant import BLOCK
from harness.train.precision.deepgemm_ops import fp8_linear, fp8_swiglu_mlp
from harness.train.precision.te_layer import FusedQwen2DecoderLayer


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' Qwen2RMSNorm, step for step (FP32 statistics, the weight applied in x's dtype)."""
    normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


class DeepGEMMLinear(nn.Linear):
    """nn.Linear whose GEMMs are DeepGEMM's block-scaled FP8 ones; shares the original Parameters."""

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> DeepGEMMLinear:
        with torch.device("meta"):
            new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        new.weight, new.bias = linear.weight, linear.bias  # same Parameters: state_dict keys unchanged
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.weight, self.bias)


class Linear(nn.Module):
    """te.Linear's signature and parameters; DeepGEMM's GEMMs."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, params_dtype=torch.float32, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=params_dtype, device=device))
        self.bias = nn.Parameter(torch.empty(n_out, dtype=params_dtype, device=device)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.weight, self.bias)


class LayerNormLinear(Linear):
    """te.LayerNormLinear with RMSNorm: the norm, then one GEMM (q/k/v)."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, eps: float = 1e-6, normalization: str = "RMSNorm",
                 params_dtype=torch.float32, device=None):  # fmt: skip
        if normalization != "RMSNorm":
            raise ValueError(f"deepgemm:blockwise's layer has RMSNorm only, not {normalization}")
        super().__init__(n_in, n_out, bias, params_dtype, device)
        self.eps = eps
        self.layer_norm_weight = nn.Parameter(torch.ones(n_in, dtype=params_dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(rms_norm(x, self.layer_norm_weight, self.eps))


class LayerNormMLP(nn.Module):
    """te.LayerNormMLP with RMSNorm and "swiglu": norm, [gate | up] = fc1, silu(gate) * up, fc2."""

    def __init__(self, hidden: int, ffn: int, eps: float = 1e-6, bias: bool = False, normalization: str = "RMSNorm",
                 activation: str = "swiglu", params_dtype=torch.float32, device=None):  # fmt: skip
        if (normalization, activation, bias) != ("RMSNorm", "swiglu", False):
            raise ValueError(f"deepgemm:blockwise's MLP is RMSNorm + SwiGLU without bias, not "
                             f"{normalization} + {activation} (bias {bias})")  # fmt: skip
        super().__init__()
        self.eps = eps
        self.layer_norm_weight = nn.Parameter(torch.ones(hidden, dtype=params_dtype, device=device))
        self.fc1_weight = nn.Parameter(torch.empty(2 * ffn, hidden, dtype=params_dtype, device=device))
        self.fc2_weight = nn.Parameter(torch.empty(hidden, ffn, dtype=params_dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_swiglu_mlp(rms_norm(x, self.layer_norm_weight, self.eps), self.fc1_weight, self.fc2_weight)


MODULES = types.SimpleNamespace(LayerNormLinear=LayerNormLinear, Linear=Linear, LayerNormMLP=LayerNormMLP)


class DeepGEMMDecoderLayer(FusedQwen2DecoderLayer):
    """FusedQwen2DecoderLayer built from MODULES; `from_hf(layer, MODULES)` carries an HF layer's weights."""

    def compile(self, *args, **kwargs) -> None:
        """The whole layer, as the BF16 arm's (TE's layer compiles only its attention)."""
        nn.Module.compile(self, *args, **kwargs)


def can_fuse_blocks(layer: nn.Module) -> bool:
    """A transformers Qwen2 decoder layer whose every projection size is a multiple of 128 (the GEMMs' blocks)."""
    if type(layer).__name__ != "Qwen2DecoderLayer":
        return False
    attention, c = layer.self_attn, layer.self_attn.config
    sizes = (c.hidden_size, c.intermediate_size, attention.head_dim * c.num_attention_heads,
             attention.head_dim * c.num_key_value_heads)  # fmt: skip
    return all(size % BLOCK == 0 for size in sizes)
