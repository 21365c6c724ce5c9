"""Global batches in a seeded order, and the micro-batches each rank runs them as.

Order: a permutation of the sequences (CPT rows, SFT conversations) every epoch, seeded by
(seed, epoch) and identical for every arm; the position (epoch, index) is saved in checkpoints
so a resumed run reads the same batches. A step takes the next `global_batch_size` sequences
of that order (running on into the next epoch), or, with `global_batch_tokens`, conversations
until the next would pass that many tokens (ending at the epoch's end).

Micro-batches:

    padded   CPT, and SFT with `packing = false`: each rank takes its share of the step's rows,
             `micro_batch_size` at a time; SFT rows right-padded to seq_len (with causal
             attention a real token never sees a later pad). CPT with `document_mask`: the same
             rows, each split at its EOS tokens into segments that attend only to themselves.
    packed   SFT (the default): the step's conversations are dealt to ranks by tokens (longest
             first, to the rank with the fewest so far), then packed on each rank into rows of
             at most `row_tokens` (best-fit decreasing). A row is one micro-batch [1, T]: its
             conversations keep their own positions (0, 1, ...) and attend only to themselves
             (harness/train/attention.py), T rounded up to a multiple of PAD_MULTIPLE by pad
             tokens that form a segment of their own. A rank with fewer rows than another gets
             empty ones (pad only, no label), so every rank runs as many forwards (FSDP).

Both packings are pure functions of the tokenised data, the seed and the step: every arm, every
resume, computes the same packs. The loss divisor is the label-token count of the whole global
batch, the same packed or padded: every trained token weighs the same (tests/train/test_packing.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.train.data import TokenizedData

PAD_MULTIPLE = 64  # packed rows are padded to a multiple of this (FP8 GEMMs want aligned token counts)
IGNORE = -100


@dataclass
class MicroBatch:
    input_ids: np.ndarray  # [rows, T] int64
    labels: np.ndarray  # [rows, T] int64, -100 where no loss is taken
    position_ids: np.ndarray | None  # [rows, T]; None: 0 .. T-1 in every row
    segments: tuple[int, ...] | None  # attention segments over the rows flattened; None: each row causal
    tokens: int  # real (non-pad) tokens


@dataclass
class Step:
    micro_batches: list[list[MicroBatch]]  # [rank][i]; the same number on every rank
    label_tokens: int  # tokens with a label (that a position predicts) in the whole global batch
    tokens: int  # real tokens, all ranks
    processed_tokens: int  # tokens the forwards process, padding included, all ranks


class Batches:
    """The steps of a stage, in order, for every rank at once."""

    def __init__(self, data: TokenizedData, stage, seed: int, *, world_size: int = 1, pad_id: int = 0,
                 eos_id: int | None = None, position: dict | None = None):  # fmt: skip
        self.data, self.stage, self.seed, self.world_size = data, stage, seed, world_size
        self.pad_id, self.eos_id = pad_id, eos_id
        self.epoch, self.index = (position["epoch"], position["index"]) if position else (0, 0)
        self._order = self._permutation(self.epoch)
        self._lengths = data.lengths

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.data))

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def next(self) -> Step:
        """The next optimiser step's micro-batches on every rank."""
        chosen = self._take()
        if self.stage.packed:
            micro = _pack_ranks(self.data, chosen, self.world_size, self.stage.row_tokens, self.pad_id)
        else:
            micro = self._padded(chosen)
        flat = [mb for rank in micro for mb in rank]
        return Step(
            micro,
            label_tokens=sum(int((mb.labels[:, 1:] != IGNORE).sum()) for mb in flat),
            tokens=sum(mb.tokens for mb in flat),
            processed_tokens=sum(mb.input_ids.size for mb in flat),
        )

    def _take(self) -> list[int]:
        """Sequence indices of the next step, advancing the position."""
        budget = self.stage.global_batch_tokens
        chosen: list[int] = []
        if budget is None:
            for _ in range(self.stage.global_batch_size):
                self._wrap()
                chosen.append(int(self._order[self.index]))
                self.index += 1
            return chosen
        self._wrap()
        total = 0
        while self.index < len(self._order):
            n = int(self._lengths[self._order[self.index]])
            if chosen and total + n > budget:
                break
            chosen.append(int(self._order[self.index]))
            total += n
            self.index += 1
        return chosen

    def _wrap(self) -> None:
        if self.index >= len(self._order):
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)

    def _padded(self, chosen: list[int]) -> list[list[MicroBatch]]:
        per_rank, mbs, seq_len = len(chosen) // self.world_size, self.stage.micro_batch_size, self.stage.seq_len
        ranks = []
        for r in range(self.world_size):
            rows = chosen[r * per_rank : (r + 1) * per_rank]
            ranks.append([self._padded_rows(rows[i : i + mbs], seq_len) for i in range(0, len(rows), mbs)])
        return ranks

    def _padded_rows(self, rows: list[int], seq_len: int) -> MicroBatch:
        ids = np.full((len(rows), seq_len), self.pad_id, dtype=np.int64)
        labels = np.full((len(rows), seq_len), IGNORE, dtype=np.int64)
        for j, i in enumerate(rows):
            tokens, mask = self.data.sequence(i)
            ids[j, : len(tokens)], labels[j, : len(tokens)] = tokens, mask
        tokens = int(sum(self._lengths[i] for i in rows))
        if not self.stage.document_mask:
            return MicroBatch(ids, labels, None, None, tokens)
        positions, segments = _document_segments(ids, self.eos_id)
        return MicroBatch(ids, labels, positions, segments, tokens)


def _document_segments(ids: np.ndarray, eos_id: int | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """CPT document masking: each row split after every EOS; positions restart in each document."""
    if eos_id is None:
        raise ValueError("document_mask needs the tokenizer's EOS id")
    positions = np.zeros_like(ids)
    segments: list[int] = []
    for r, row in enumerate(ids):
        ends = [int(i) + 1 for i in np.flatnonzero(row == eos_id)]
        bounds = [0, *[e for e in ends if e < len(row)], len(row)]
        for start, end in zip(bounds, bounds[1:], strict=False):
            positions[r, start:end] = np.arange(end - start)
            segments.append(end - start)
    return positions, tuple(segments)


# ---------------------------------------------------------------- packing


def deal_to_ranks(lengths: list[int], world_size: int) -> list[list[int]]:
    """Indices into `lengths` per rank, balancing tokens: longest first, each to the least-loaded rank."""
    loads, ranks = [0] * world_size, [[] for _ in range(world_size)]
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        ranks[r].append(i)
        loads[r] += lengths[i]
    return ranks


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices into `lengths` grouped into bins of at most `capacity` tokens (every length <= capacity)."""
    bins: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        fits = [b for b in range(len(bins)) if free[b] >= lengths[i]]
        if fits:
            b = min(fits, key=lambda b: (free[b], b))
            bins[b].append(i)
            free[b] -= lengths[i]
        else:
            bins.append([i])
            free.append(capacity - lengths[i])
    return bins


def _pack_ranks(data: TokenizedData, chosen: list[int], world_size: int, capacity: int, pad_id: int):
    lengths = [int(data.lengths[i]) for i in chosen]
    ranks = []
    for share in deal_to_ranks(lengths, world_size):
        rows = best_fit_decreasing([lengths[j] for j in share], capacity)
        ranks.append([_packed_row(data, [chosen[share[j]] for j in row], pad_id) for row in rows])
    most = max(len(rows) for rows in ranks)
    for rows in ranks:
        rows += [_packed_row(data, [], pad_id) for _ in range(most - len(rows))]  # empty rows: same forwards
    return ranks


def _packed_row(data: TokenizedData, members: list[int], pad_id: int) -> MicroBatch:
    parts = [data.sequence(i) for i in members]
    real = sum(len(tokens) for tokens, _ in parts)
    pad = -real % PAD_MULTIPLE or (PAD_MULTIPLE if not members else 0)
    ids = np.concatenate([*(t for t, _ in parts), np.full(pad, pad_id)]).astype(np.int64)
    labels = np.concatenate([*(m for _, m in parts), np.full(pad, IGNORE)]).astype(np.int64)
    segments = tuple(len(t) for t, _ in parts) + ((pad,) if pad else ())
    positions = np.concatenate([np.arange(n) for n in segments]).astype(np.int64)
    return MicroBatch(ids[None], labels[None], positions[None], segments, real)


def steps_for(stage, data: TokenizedData, seed: int) -> int:
    """Optimiser steps of a stage: stage.steps, or epochs over the data (rounded up)."""
    if stage.steps:
        return stage.steps
    if stage.global_batch_tokens is None:
        return max(1, -(-int(stage.epochs * len(data)) // stage.global_batch_size))
    # Token budgets: count each epoch's steps by walking its order (they never cross an epoch).
    whole, part = int(stage.epochs), stage.epochs - int(stage.epochs)
    total = 0
    for epoch in range(whole + (1 if part else 0)):
        counter = Batches(data, stage, seed, position={"epoch": epoch, "index": 0})
        steps = 0
        while counter.epoch == epoch and counter.index < len(data):
            counter._take()
            steps += 1
        total += steps if epoch < whole else math.ceil(part * steps)
    return max(1, total)


def attention_context(stage, data: TokenizedData) -> float:
    """The sequence length each token attends over on average, for the attention FLOPs of MFU.

    seq_len for full rows; packed conversations attend within themselves: sum(L^2) / sum(L).
    """
    if not stage.packed:
        return float(stage.seq_len)
    lengths = data.lengths.astype(np.float64)
    return float((lengths**2).sum() / lengths.sum())
