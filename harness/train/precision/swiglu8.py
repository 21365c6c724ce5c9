"""SwiGLU whose inputs are kept for backward in FP8: the `+swiglu8` recipe modifier.

In a Qwen2 MLP, down_proj(silu(gate) * up), autograd keeps `gate` and `up` (2 x 18944 BF16
values per token at the 7B shape) so that backward can differentiate silu(gate) * up. Under
torchao's FP8 linears that is most of what a compiled decoder layer keeps for backward
(docs/PERFORMANCE.md, "Where the memory goes"). DeepSeek-V3 (section 3.3, "Low-Precision
Storage") caches exactly these SwiGLU inputs in FP8 with fine-grained scales; so does this:

    forward   out = silu(gate) * up               exactly the BF16 result (nothing changes)
    saved     Q(gate), Q(up)                      E4M3, one power-of-2 scale per 1x128 block
    backward  g, u = dequantize(...)              FP32 from here on
              d_up   = dy * silu(g)
              d_gate = dy * u * sigmoid(g) * (1 + g * (1 - sigmoid(g)))

So the forward is bit-identical and only the two SwiGLU gradients see FP8 rounding of their
inputs (at most 2^-4 relative per element). The down projection still needs silu(gate) * up
for its weight gradient; its FP8 linear keeps that itself (torch.compile's partitioner picks
the FP8 copy, the smaller one). Pure torch: it runs (and is tested) on CPU as well.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import InvalidInput

BLOCK = 128
E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448


def quantize_blocks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E4M3 values [..., n_blocks, 128], FP32 power-of-2 scales [..., n_blocks, 1]) of x along its last dim.

    The last dimension is zero-padded to a multiple of 128; dequantize_blocks removes the padding.
    """
    pad = -x.shape[-1] % BLOCK
    if pad:
        x = F.pad(x, (0, pad))
    blocks = x.float().reshape(*x.shape[:-1], x.shape[-1] // BLOCK, BLOCK)
    amax = blocks.abs().amax(dim=-1, keepdim=True).clamp(min=1e-30)
    # A power-of-2 scale rounded down: exact to apply and undo, and amax * scale <= 448 (no clipping).
    scale = torch.exp2(torch.floor(torch.log2(E4M3_MAX / amax)))
    return (blocks * scale).to(E4M3), scale


def dequantize_blocks(q: torch.Tensor, scale: torch.Tensor, n: int) -> torch.Tensor:
    """FP32 tensor [..., n] back from quantize_blocks's output (n: the original last dim)."""
    x = q.float() / scale
    return x.reshape(*x.shape[:-2], -1)[..., :n]


def _forward(gate: torch.Tensor, up: torch.Tensor):
    return (F.silu(gate) * up, *quantize_blocks(gate), *quantize_blocks(up))


@functools.cache
def _forward_fused():
    """_forward compiled into fused kernels (created on first use: importing torch.compile costs seconds)."""
    return torch.compile(_forward, fullgraph=True)


@torch.library.custom_op("harness::swiglu_quantized_inputs", mutates_args=())
def _swiglu_quantized_inputs(
    gate: torch.Tensor, up: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(silu(gate) * up, Q(gate), its scales, Q(up), its scales), as one opaque op.

    Opaque on purpose: were these ops traced into a compiled layer, torch.compile's partitioner
    would be free to keep the BF16 `gate` and `up` and redo the quantization in backward (it
    does, with plain BF16 linears around), which saves nothing. A custom op's outputs cannot be
    recomputed, so the FP8 tensors are what backward keeps. On a GPU the op runs its own fused
    compiled kernel; elsewhere the same function eagerly.
    """
    return (_forward_fused() if gate.is_cuda else _forward)(gate, up)


@_swiglu_quantized_inputs.register_fake
def _(gate, up):
    n_blocks = -(-gate.shape[-1] // BLOCK)

    def quantized(t):
        return (t.new_empty(*t.shape[:-1], n_blocks, BLOCK, dtype=E4M3),
                t.new_empty(*t.shape[:-1], n_blocks, 1, dtype=torch.float32))  # fmt: skip

    return (torch.empty_like(gate), *quantized(gate), *quantized(up))


class _SwiGLUSavedFP8(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        out, *saved = torch.ops.harness.swiglu_quantized_inputs(gate, up)
        ctx.save_for_backward(*saved)
        ctx.n, ctx.gate_dtype, ctx.up_dtype = gate.shape[-1], gate.dtype, up.dtype
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate_q, gate_scale, up_q, up_scale = ctx.saved_tensors
        g = dequantize_blocks(gate_q, gate_scale, ctx.n)
        u = dequantize_blocks(up_q, up_scale, ctx.n)
        dy = grad.float()
        sig = torch.sigmoid(g)
        d_up = dy * g * sig
        d_gate = dy * u * sig * (1 + g * (1 - sig))
        return d_gate.to(ctx.gate_dtype), d_up.to(ctx.up_dtype)


def swiglu_saved_fp8(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up, with gate and up kept for backward in FP8 (module docstring)."""
    if gate.shape != up.shape:
        raise ValueError(f"swiglu_saved_fp8: gate {tuple(gate.shape)} and up {tuple(up.shape)} differ")
    return _SwiGLUSavedFP8.apply(gate, up)


class SwiGLUSavedFP8MLP(nn.Module):
    """A Qwen2/Llama MLP computing down(silu(gate(x)) * up(x)) through swiglu_saved_fp8.

    It holds the original gate_proj/up_proj/down_proj modules (FP8 linears or not), so parameter
    names and therefore checkpoints stay the HF ones.
    """

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(swiglu_saved_fp8(self.gate_proj(x), self.up_proj(x)))


def use_swiglu_saved_fp8(model: nn.Module, recipe: str) -> nn.Module:
    """Give every decoder layer of a Qwen2-style model the FP8-saving SwiGLU MLP (in place)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise InvalidInput(f"{recipe}: {type(model).__name__} has no model.layers; only decoder LMs are supported")
    for layer in layers:
        mlp = getattr(layer, "mlp", None)
        if not all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            raise InvalidInput(
                f"{recipe}: {type(mlp).__name__} has no gate_proj/up_proj/down_proj/act_fn; +swiglu8 needs a SwiGLU MLP"
            )
        if not _is_silu(mlp.act_fn):
            raise InvalidInput(
                f"{recipe}: the MLP activation is {type(mlp.act_fn).__name__}, not SiLU; "
                "+swiglu8 needs a SiLU-gated MLP (Qwen2, Llama)"
            )
        layer.mlp = SwiGLUSavedFP8MLP(mlp)
    return model


def _is_silu(act: nn.Module) -> bool:
    """Whether `act` computes SiLU (transformers has its own SiLU class besides torch's)."""
    probe = torch.linspace(-6, 6, 25)
    with torch.no_grad():
        return bool(torch.allclose(act(probe), F.silu(probe)))
