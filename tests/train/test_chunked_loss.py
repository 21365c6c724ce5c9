"""The chunked training loss (model.loss_chunk_tokens) against Hugging Face's own causal-LM loss."""

from __future__ import annotations

import pytest
import torch
from benchkit import load_benchmark_module

from harness.suite import ModelConfig
from harness.train.loss import causal_lm_loss
from harness.train.model import build_model

VOCAB = 512


def _batch():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (3, 40), generator=gen)
    labels = ids.clone()
    labels[0, :9] = -100  # a prompt (SFT masking)
    labels[2, 30:] = -100  # padding
    return ids, labels, int((labels[:, 1:] != -100).sum())


def _loss_and_grads(chunk_tokens):
    model = build_model(ModelConfig(preset="tiny"), VOCAB, seed=0)
    ids, labels, n_items = _batch()
    loss = causal_lm_loss(model, ids, labels, n_items, chunk_tokens)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("chunk_tokens", [7, 64, 10_000])  # not a divisor, a few chunks, one chunk
def test_chunked_loss_equals_hugging_faces_in_value_and_gradients(chunk_tokens):
    ref_loss, ref_grads = _loss_and_grads(None)
    loss, grads = _loss_and_grads(chunk_tokens)
    assert loss == pytest.approx(float(ref_loss), rel=1e-6)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-5, atol=1e-7, msg=name)


def test_chunked_loss_keeps_one_chunk_of_fp32_logits_for_backward_not_all():
    memory = load_benchmark_module("memory")
    model = build_model(ModelConfig(preset="tiny"), VOCAB, seed=0)
    ids, labels, n_items = _batch()
    logits_bytes = ids.numel() * VOCAB * 4
    saved = {}
    for chunk in (None, 8):
        with memory.saved_tensor_bytes(list(model.parameters())) as by_dtype:
            loss = causal_lm_loss(model, ids, labels, n_items, chunk)
        saved[chunk] = by_dtype.get("float32", 0)
        loss.backward()
    assert saved[None] > logits_bytes  # HF keeps the whole FP32 logits (and more) for the softmax backward
    assert saved[None] - saved[8] > 0.9 * logits_bytes  # chunked: only lm_head inputs, no logits


def test_chunked_loss_with_several_processes_is_refused_naming_the_field(tmp_path):
    from harness.errors import InvalidInput
    from harness.suite import load_suite

    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "s"\n[model]\npreset = "tiny"\nloss_chunk_tokens = 1024\n[arms]\nbf16 = "bf16"\n'
        "[topology]\nnproc_per_node = 2\n"
        '[stages.cpt]\nkind = "cpt"\ndata = { path = "builtin:stdlib" }\nseq_len = 64\n'
        "global_batch_size = 4\nmicro_batch_size = 2\nsteps = 2\noptim = { lr = 1e-3 }\n"
    )
    with pytest.raises(InvalidInput, match=r"model.loss_chunk_tokens.*one process only"):
        load_suite(suite)
