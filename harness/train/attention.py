"""Causal attention within segments: packed conversations (and CPT documents) never see each other.

A micro-batch of packed rows carries a `Segments` object (the lengths of its segments over the
flattened rows); the model's attention then runs causal attention inside each segment only, the
variable-length attention of FlashAttention's varlen kernels, verl's `use_remove_padding` and
Megatron's packed sequences:

    CUDA, bf16/fp16   segments of LONG_SEGMENT_TOKENS or more: one causal scaled_dot_product_attention
                      call each (Hopper's fast fused kernels); each run of shorter segments between
                      them: one torch.nn.attention.varlen.varlen_attn call (FlashAttention-2's varlen
                      kernel in torch), which does not pay a launch per conversation
    otherwise (CPU)   scaled_dot_product_attention with a block-diagonal causal mask (one call per
                      micro-batch of up to 8192 tokens, else one call per segment): the same numbers

Every arm of a run gets the same kernel: transformers' layers through the registered attention
implementation `harness_varlen` (`use(model)`), Transformer Engine's fused layers
(harness/train/precision/te_layer.py) through `causal_attention`. Without segments (CPT rows,
padded SFT) both are plain causal SDPA, what the arms ran before.
"""

from __future__ import annotations

import inspect
import itertools
from typing import NamedTuple

import torch
import torch.nn.functional as F

NAME = "harness_varlen"
MASKED_SDPA_MAX_TOKENS = 8192  # above this a [T, T] mask costs more than one call per segment
# Measured on one H200 (torch 2.11, 12 query / 2 KV heads of 128, bf16, forward + backward; docs/PERFORMANCE.md):
# causal SDPA on one 32k segment 19.2 ms (601 TFLOP/s), varlen_attn 36.5 ms (317); ten 3.3k segments
# 5.6 ms per-segment SDPA vs 5.4 ms varlen; sixteen 2k ones 6.0 vs 3.8 ms; 64 of 512 20.5 vs 2.0 ms.
LONG_SEGMENT_TOKENS = 4096


class Piece(NamedTuple):
    """A stretch of the flattened rows attended by one kernel call: one long segment, or a run of short ones."""

    start: int
    stop: int
    cu_seqlens: torch.Tensor | None  # the run's segment offsets from `start` (int32, model's device); None: one segment
    max_length: int


class Segments:
    """Lengths of the attention segments of a micro-batch, over its rows flattened in order.

    A plain class on purpose, not a frozen dataclass: torch.compile (2.11) guards on every field of
    a frozen dataclass passed into a compiled layer, so each new count of conversations per row
    recompiled the decoder layer until dynamo's recompile limit (8) left it uncompiled (seen on
    the H200). Only `_segmented`, which dynamo does not trace, reads these fields.
    """

    __slots__ = ("lengths", "pieces")

    def __init__(self, lengths: tuple[int, ...], pieces: tuple[Piece, ...]):
        self.lengths = lengths
        self.pieces = pieces  # what the CUDA path runs, in order

    @classmethod
    def of(cls, lengths, device) -> Segments:
        """The segments of `lengths` and their kernel plan; the offsets go to `device` once per micro-batch."""
        lengths = tuple(int(n) for n in lengths)
        pieces, start = [], 0
        for long, group in itertools.groupby(lengths, key=lambda n: n >= LONG_SEGMENT_TOKENS):
            group = list(group)
            if long:
                for n in group:
                    pieces.append(Piece(start, start + n, None, n))
                    start += n
            else:
                cu = torch.zeros(len(group) + 1, dtype=torch.int32)
                cu[1:] = torch.tensor(group, dtype=torch.int32).cumsum(0)
                pieces.append(Piece(start, start + sum(group), cu.to(device, non_blocking=True), max(group)))
                start += sum(group)
        return cls(lengths, tuple(pieces))

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
    if _use_varlen(q):
        flat = [t.transpose(1, 2).reshape(b * s, t.shape[1], d) for t in (q, k, v)]  # [T, H, D]
        parts = [_piece(flat, piece, scale) for piece in segments.pieces]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
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


def _use_varlen(q) -> bool:
    return q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and _varlen is not None


def _piece(flat, piece: Piece, scale: float) -> torch.Tensor:
    """Attention of one piece of the flattened q, k, v [T, H, D]: [stop - start, H, D]."""
    q, k, v = (t[piece.start : piece.stop] for t in flat)
    if piece.cu_seqlens is not None:
        return _varlen(q, k, v, piece.cu_seqlens, piece.max_length, scale)
    q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # [1, H, n, D]
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)[0].transpose(0, 1)


def _make_varlen():
    """torch's varlen attention, adapted to the signature this torch has (it changed in 2.11-2.13)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters

    def run(q, k, v, cu: torch.Tensor, n: int, scale: float):
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
