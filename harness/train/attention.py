"""Causal attention within segments: packed conversations (and CPT documents) never see each other.

A micro-batch of packed rows carries a `Segments` object (the lengths of its segments over the
flattened rows); the model's attention then runs causal attention inside each segment only, the
variable-length attention of FlashAttention's varlen kernels, verl's `use_remove_padding` and
Megatron's packed sequences:

    CUDA, bf16/fp16   torch.nn.attention.varlen.varlen_attn (FlashAttention-2's varlen kernel in torch)
    otherwise (CPU)   scaled_dot_product_attention with a block-diagonal causal mask (one call per
                      micro-batch of up to 8192 tokens, else one call per segment): the same numbers

Every arm of a run gets the same kernel: transformers' layers through the registered attention
implementation `harness_varlen` (`use(model)`), Transformer Engine's fused layers
(harness/train/precision/te_layer.py) through `causal_attention`. Without segments (CPT rows,
padded SFT) both are plain causal SDPA, what the arms ran before.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

NAME = "harness_varlen"
MASKED_SDPA_MAX_TOKENS = 8192  # above this a [T, T] mask costs more than one call per segment


class Segments:
    """Lengths of the attention segments of a micro-batch, over its rows flattened in order.

    A plain class on purpose, not a frozen dataclass: torch.compile (2.11) guards on every field of
    a frozen dataclass passed into a compiled layer, so each new count of conversations per row
    recompiled the decoder layer until dynamo's recompile limit (8) left it uncompiled (seen on
    the H200). Only `_segmented`, which dynamo does not trace, reads these fields.
    """

    __slots__ = ("lengths", "cu_seqlens", "max_length")

    def __init__(self, lengths: tuple[int, ...], cu_seqlens: torch.Tensor, max_length: int):
        self.lengths = lengths
        self.cu_seqlens = cu_seqlens  # int32 [n + 1] on the model's device: 0, l0, l0 + l1, ...
        self.max_length = max_length

    @classmethod
    def of(cls, lengths, device) -> Segments:
        lengths = tuple(int(n) for n in lengths)
        cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu[1:] = torch.tensor(lengths, dtype=torch.int32).cumsum(0)
        return cls(lengths, cu.to(device, non_blocking=True), max(lengths))

    def __repr__(self) -> str:
        return f"Segments({self.lengths})"


def causal_attention(q, k, v, scale: float, segments: Segments | None = None) -> torch.Tensor:
    """Causal attention of q [B, H, S, D] over k, v [B, Hkv, S, D] (GQA), within segments if given.

    Returns [B, H, S, D]. Segments cover the B rows flattened one after the other.
    """
    if segments is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
    return _segmented(q, k, v, scale, segments)


@torch.compiler.disable  # segment counts differ per micro-batch: eager here, compiled layers around it
def _segmented(q, k, v, scale: float, segments: Segments) -> torch.Tensor:
    b, h, s, d = q.shape
    if sum(segments.lengths) != b * s:
        raise ValueError(f"segments cover {sum(segments.lengths)} tokens, the micro-batch has {b * s}")
    if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and _varlen is not None:
        flat = [t.transpose(1, 2).reshape(b * s, t.shape[1], d) for t in (q, k, v)]
        out = _varlen(*flat, segments, scale)
        return out.reshape(b, s, h, d).transpose(1, 2)
    q, k, v = (t.transpose(0, 1).reshape(1, t.shape[1], b * s, d) for t in (q, k, v))  # [1, H, T, D]
    if b * s <= MASKED_SDPA_MAX_TOKENS:
        seg = torch.repeat_interleave(torch.arange(len(segments.lengths)), torch.tensor(segments.lengths))
        seg = seg.to(q.device)
        causal = torch.ones(b * s, b * s, dtype=torch.bool, device=q.device).tril()
        mask = causal & (seg[:, None] == seg[None, :])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    else:
        parts, start = [], 0
        for n in segments.lengths:
            sl = slice(start, start + n)
            parts.append(F.scaled_dot_product_attention(q[:, :, sl], k[:, :, sl], v[:, :, sl], is_causal=True,
                                                        scale=scale, enable_gqa=True))  # fmt: skip
            start += n
        out = torch.cat(parts, dim=2)
    return out.reshape(h, b, s, d).transpose(0, 1)


def _make_varlen():
    """torch's varlen attention, adapted to the signature this torch has (it changed in 2.11-2.13)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters

    def run(q, k, v, segments: Segments, scale: float):
        cu, n = segments.cu_seqlens, segments.max_length
        if "enable_gqa" not in params and k.shape[1] != q.shape[1]:
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
        kwargs = {"scale": scale} if "scale" in params else {}
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        if "window_size" in params:
            kwargs["window_size"] = (-1, 0)  # causal
        else:
            kwargs["is_causal"] = True
        return varlen_attn(q, k, v, cu, cu, n, n, **kwargs)

    return run


_varlen = _make_varlen()


def hf_attention(module, query, key, value, attention_mask=None, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention-function interface ([B, H, S, D] in, [B, S, H, D] out) over causal_attention."""
    if attention_mask is not None:
        raise ValueError(f"{NAME} attention takes no attention mask: pack rows or pad on the right")
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = causal_attention(query, key, value, scale, kwargs.get("segments"))
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `harness_varlen` an attention implementation transformers' models can be set to.

    No mask function is registered for it on purpose: transformers then builds no mask (and does
    not scan position ids for packed sequences, which would synchronise with the GPU).
    """
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, hf_attention)


def use(model) -> None:
    """Switch a transformers model's attention to `harness_varlen` (the trainer does this for packed stages)."""
    register()
    model.set_attn_implementation(NAME)
