"""Packed SFT: conversations share rows but not attention, positions or loss weight.

Tolerances: the tiny model runs in float32 on CPU; packing changes only the order of the same
additions (a row's GEMMs span several conversations), so logits agree within 1e-5 and gradients
within 1e-5 relative + 1e-6 absolute (3 of 262,144 embedding-gradient entries differ by 3e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.suite import DataConfig, ModelConfig, StageConfig
from harness.train import attention
from harness.train.batches import PAD_MULTIPLE, Batches, best_fit_decreasing, deal_to_ranks, steps_for
from harness.train.data import TokenizedData, build_data
from harness.train.loss import causal_lm_loss
from harness.train.model import build_model

TINY = ModelConfig(preset="tiny", tokenizer="builtin:tiny-bpe")


def sft_stage(**fields) -> StageConfig:
    base = dict(kind="sft", data=DataConfig(path="builtin:arith-sft", max_samples=96), seq_len=64,
                global_batch_size=8, micro_batch_size=2, steps=4, optim={"lr": 1e-3})  # fmt: skip
    return StageConfig(**{**base, **fields})


@pytest.fixture(scope="module")
def arith(tiny_tokenizer):
    return build_data(sft_stage(), tiny_tokenizer)


@pytest.fixture
def model(tiny_tokenizer):
    model = build_model(TINY, len(tiny_tokenizer), seed=0)
    attention.use(model)
    return model


def _forward(model, ids, positions=None, segments=None):
    extra = {}
    if positions is not None:
        extra["position_ids"] = torch.as_tensor(positions).reshape(1, -1)
    if segments is not None:
        extra["segments"] = attention.Segments.of(segments, "cpu")
    return model(input_ids=torch.as_tensor(ids).reshape(1, -1), **extra).logits[0]


def _row(data: TokenizedData, members: list[int]):
    ids = np.concatenate([data.sequence(i)[0] for i in members]).astype(np.int64)
    lengths = [int(data.lengths[i]) for i in members]
    positions = np.concatenate([np.arange(n) for n in lengths])
    return ids, positions, lengths


def test_each_conversation_in_a_packed_row_gets_the_logits_loss_and_gradients_it_gets_alone(model, arith):
    members = [0, 5, 9]
    ids, positions, lengths = _row(arith, members)
    labels = np.concatenate([arith.sequence(i)[1] for i in members]).astype(np.int64)
    packed_loss = causal_lm_loss(model, torch.as_tensor(ids)[None], torch.as_tensor(labels)[None], 1,
                                 position_ids=torch.as_tensor(positions)[None],
                                 segments=attention.Segments.of(lengths, "cpu"))  # fmt: skip
    packed_loss.backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with torch.no_grad():
        logits = _forward(model, ids, positions, lengths)
    alone_loss, start = 0.0, 0
    for i, n in zip(members, lengths, strict=True):
        tokens, mask = arith.sequence(i)
        with torch.no_grad():
            torch.testing.assert_close(logits[start : start + n], _forward(model, tokens), rtol=1e-5, atol=1e-5)
        loss = causal_lm_loss(model, torch.as_tensor(tokens, dtype=torch.int64)[None],
                              torch.as_tensor(mask, dtype=torch.int64)[None], 1)  # fmt: skip
        loss.backward()  # gradients add up over the conversations alone
        alone_loss += loss.item()
        start += n
    assert packed_loss.item() == pytest.approx(alone_loss, rel=1e-5)
    for packed, p in zip(packed_grads, model.parameters(), strict=True):
        torch.testing.assert_close(packed, p.grad, rtol=1e-5, atol=1e-6)


def test_changing_one_conversation_leaves_every_other_conversations_logits_unchanged(model, arith):
    ids, positions, lengths = _row(arith, [1, 2, 3])
    changed = ids.copy()
    changed[lengths[0] + 2 : lengths[0] + lengths[1] - 2] = 7  # the middle conversation's tokens
    with torch.no_grad():
        before, after = _forward(model, ids, positions, lengths), _forward(model, changed, positions, lengths)
    first, last = slice(0, lengths[0]), slice(lengths[0] + lengths[1], None)
    assert torch.equal(before[first], after[first]) and torch.equal(before[last], after[last])
    assert not torch.equal(before[lengths[0] + 3], after[lengths[0] + 3])


def test_positions_restart_at_zero_for_every_conversation_and_pads_form_their_own_segment(arith, tiny_tokenizer):
    step = Batches(arith, sft_stage(), seed=0, pad_id=tiny_tokenizer.pad_token_id).next()
    for mb in step.micro_batches[0]:
        assert mb.input_ids.shape[0] == 1 and mb.input_ids.shape[1] % PAD_MULTIPLE == 0
        start = 0
        for n in mb.segments:
            assert mb.position_ids[0, start : start + n].tolist() == list(range(n))
            start += n
        assert start == mb.input_ids.shape[1]
        real = sum(mb.segments) - (mb.input_ids.shape[1] - mb.tokens)
        assert (mb.labels[0, real:] == -100).all() and (mb.input_ids[0, real:] == tiny_tokenizer.pad_token_id).all()


def _step_loss(model, step) -> float:
    total = 0.0
    for mb in step.micro_batches[0]:
        extra = {}
        if mb.segments is not None:
            extra = {"position_ids": torch.as_tensor(mb.position_ids),
                     "segments": attention.Segments.of(mb.segments, "cpu")}  # fmt: skip
        with torch.no_grad():
            total += causal_lm_loss(model, torch.as_tensor(mb.input_ids), torch.as_tensor(mb.labels),
                                    step.label_tokens, **extra).item()  # fmt: skip
    return total


def test_a_packed_step_trains_the_same_conversations_with_the_same_loss_as_a_padded_step(model, arith, tiny_tokenizer):
    packed = Batches(arith, sft_stage(), seed=1, pad_id=tiny_tokenizer.pad_token_id)
    padded = Batches(arith, sft_stage(packing=False), seed=1, pad_id=tiny_tokenizer.pad_token_id)
    for _ in range(3):
        a, b = packed.next(), padded.next()
        assert a.label_tokens == b.label_tokens and a.tokens == b.tokens  # one loss divisor, real tokens alike
        assert a.processed_tokens < b.processed_tokens  # padded rows pay for their padding
        assert _step_loss(model, a) == pytest.approx(_step_loss(model, b), rel=1e-5)


def test_every_conversation_is_packed_once_within_the_row_budget_and_ranks_run_as_many_forwards(arith):
    stage = sft_stage(global_batch_size=11, micro_batch_tokens=128)
    step = Batches(arith, stage, seed=0, world_size=3).next()
    assert len({len(rank) for rank in step.micro_batches}) == 1  # FSDP's collectives: as many forwards per rank
    chosen = np.random.default_rng([0, 0]).permutation(len(arith))[:11]  # the step's conversations
    real_segments = []
    for mb in (mb for rank in step.micro_batches for mb in rank):
        assert mb.input_ids.shape[1] <= 128  # within the budget (already a multiple of PAD_MULTIPLE)
        covered = 0
        for n in mb.segments:
            if covered == mb.tokens:
                break  # the rest is the row's padding
            real_segments.append(n)
            covered += n
    assert sorted(real_segments) == sorted(int(arith.lengths[i]) for i in chosen)
    assert step.tokens == sum(real_segments)


def test_best_fit_decreasing_and_dealing_are_deterministic_and_complete():
    lengths = [30, 5, 17, 60, 22, 41, 9, 9, 64, 1]
    bins = best_fit_decreasing(lengths, 64)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    assert len(bins) == -(-sum(lengths) // 64)  # as few rows as the tokens need, here
    assert bins == best_fit_decreasing(lengths, 64)
    ranks = deal_to_ranks(lengths, 3)
    loads = [sum(lengths[i] for i in r) for r in ranks]
    assert sorted(i for r in ranks for i in r) == list(range(len(lengths))) and max(loads) - min(loads) <= 9


def test_packs_are_the_same_for_every_arm_and_after_a_resume(arith):
    stage = sft_stage()
    first = Batches(arith, stage, seed=2)
    steps = [first.next() for _ in range(15)]  # over an epoch boundary (96 conversations, 8 per step)
    again = Batches(arith, stage, seed=2)
    for i in range(15):
        if i == 7:
            again = Batches(arith, stage, seed=2, position=again.position)  # what a checkpoint restores
        step = again.next()
        for a, b in zip(steps[i].micro_batches[0], step.micro_batches[0], strict=True):
            assert np.array_equal(a.input_ids, b.input_ids) and a.segments == b.segments


def test_token_budget_steps_stay_within_budget_and_do_not_cross_epochs(arith):
    stage = sft_stage(global_batch_size=None, global_batch_tokens=200, steps=None, epochs=2)
    batches = Batches(arith, stage, seed=0)
    seen_epochs, per_epoch = [], {0: 0, 1: 0}
    for _ in range(steps_for(stage, arith, seed=0)):
        epoch = batches.epoch if batches.index < len(arith) else batches.epoch + 1
        step = batches.next()
        assert step.tokens <= 200
        per_epoch[epoch] += step.tokens
        seen_epochs.append(epoch)
    assert per_epoch[0] == per_epoch[1] == int(arith.lengths.sum())  # each epoch sees every conversation once
    assert seen_epochs == sorted(seen_epochs)


def test_the_padded_path_is_kept_and_needs_no_row_budget():
    with pytest.raises(ValueError, match="micro_batch_tokens needs packed sft"):
        sft_stage(packing=False, micro_batch_tokens=256)
    with pytest.raises(ValueError, match="packing applies to sft"):
        StageConfig(kind="cpt", data=DataConfig(path="x"), seq_len=8, global_batch_size=2, micro_batch_size=1,
                    steps=1, optim={"lr": 1e-3}, packing=True)  # fmt: skip
    with pytest.raises(ValueError, match="below seq_len"):
        sft_stage(micro_batch_tokens=32)
    assert sft_stage().packed and not sft_stage(packing=False).packed


def test_cpt_document_mask_keeps_each_document_blind_to_the_ones_before_it(model, tiny_tokenizer, corpus):
    stage = StageConfig(kind="cpt", data=DataConfig(path=str(corpus)), seq_len=64, global_batch_size=2,
                        micro_batch_size=2, steps=1, optim={"lr": 1e-3}, document_mask=True)  # fmt: skip
    data = build_data(stage, tiny_tokenizer)
    (mb,) = Batches(data, stage, seed=0, eos_id=tiny_tokenizer.eos_token_id).next().micro_batches[0]
    assert len(mb.segments) > 2 and sum(mb.segments) == mb.input_ids.size
    row = mb.input_ids[0]
    first_end = mb.segments[0]  # the first document ends with EOS; the second starts after it
    assert row[first_end - 1] == tiny_tokenizer.eos_token_id and mb.position_ids[0, first_end] == 0
    with torch.no_grad():
        full = model(input_ids=torch.as_tensor(mb.input_ids), position_ids=torch.as_tensor(mb.position_ids),
                     segments=attention.Segments.of(mb.segments, "cpu")).logits  # fmt: skip
        second = mb.segments[1]
        alone = _forward(model, row[first_end : first_end + second])
    torch.testing.assert_close(full[0, first_end : first_end + second], alone, rtol=1e-5, atol=1e-5)


def test_compiled_layers_take_rows_of_any_conversation_count_without_recompiling(model, arith):
    # Packed rows differ in how many conversations they hold; the compiled decoder layers must not
    # recompile per count (dynamo gives up after 8 and runs them uncompiled: the H200's first packed run).
    torch._dynamo.reset()
    for layer in model.model.layers:
        layer.compile(backend="eager")
    members_per_row = ([0, 5], [1, 2, 3], [4, 6, 7, 8, 10])
    rows = [_row(arith, members) for members in members_per_row]
    size = max(len(ids) for ids, _, _ in rows)

    def run(ids, positions, lengths):
        pad = size - len(ids)  # one row length, so only the segment count changes
        ids, positions = np.pad(ids, (0, pad)), np.concatenate([positions, np.arange(pad)])
        with torch.no_grad():
            _forward(model, ids, positions, lengths + ([pad] if pad else []))

    run(*rows[0])
    with torch._dynamo.config.patch(error_on_recompile=True):
        for row in rows[1:]:
            run(*row)


def test_the_cuda_plan_gives_long_segments_their_own_call_and_runs_of_short_ones_one_varlen_call(monkeypatch):
    # The CUDA path's plan, run on CPU: varlen_attn replaced by per-segment causal SDPA over its
    # offsets; the result must equal the CPU path's, and the calls must follow the plan.
    calls = []

    def varlen_reference(q, k, v, cu, n, scale):  # [T, H, D] in and out, like torch's varlen_attn
        calls.append(cu.tolist())
        bounds = cu.tolist()
        parts = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            part = [t[a:b].transpose(0, 1)[None] for t in (q, k, v)]
            out = torch.nn.functional.scaled_dot_product_attention(*part, is_causal=True, scale=scale, enable_gqa=True)
            parts.append(out[0].transpose(0, 1))
        return torch.cat(parts)

    lengths = (5, 40, 3, 3, 50, 7)
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 108, 8), torch.randn(1, 2, 108, 8), torch.randn(1, 2, 108, 8)
    expected = attention.causal_attention(q, k, v, 0.3, attention.Segments.of(lengths, "cpu"))
    monkeypatch.setattr(attention, "LONG_SEGMENT_TOKENS", 32)
    monkeypatch.setattr(attention, "_varlen", varlen_reference)
    monkeypatch.setattr(attention, "_use_varlen", lambda q: True)
    segments = attention.Segments.of(lengths, "cpu")
    assert [(p.start, p.stop, p.cu_seqlens is None) for p in segments.pieces] == [
        (0, 5, False), (5, 45, True), (45, 51, False), (51, 101, True), (101, 108, False)]  # fmt: skip
    out = attention.causal_attention(q, k, v, 0.3, segments)
    assert calls == [[0, 5], [0, 3, 6], [0, 7]]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
