"""Model FLOPs per token against a hand count and against the parameters transformers builds."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from harness.telemetry.flops import flops_per_token, non_embedding_params, peak_flops


def _config(**overrides):
    base = {
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "vocab_size": 10,
        "tie_word_embeddings": False,
    }
    return Qwen2Config(**{**base, **overrides})


def test_flops_per_token_of_a_small_config_matches_a_hand_count():
    # per layer: q 8*8+8, k and v 2*(8*4+4), o 8*8, mlp 3*8*16, norms 2*8 = 608
    # N = 2*608 + final norm 8 + lm_head 10*8 = 1304; 6N = 7824; attention 12*2*8*16 = 3072
    assert non_embedding_params(_config()) == 1304
    assert flops_per_token(_config(), seq_len=16) == 10896.0


@pytest.mark.parametrize("tied", [False, True])
def test_non_embedding_params_match_the_built_model(tied):
    config = _config(tie_word_embeddings=tied)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    total = sum(p.numel() for p in model.parameters())  # parameters() counts a tied matrix once
    embedding = model.get_input_embeddings().weight.numel()
    lm_head = config.vocab_size * config.hidden_size
    # the lm_head matmul is counted either way; a tied model shares its weight with the embedding
    expected = total - embedding + (lm_head if tied else 0)
    assert non_embedding_params(config) == expected


def test_attention_term_grows_linearly_with_sequence_length():
    config = _config()
    assert flops_per_token(config, 32) - flops_per_token(config, 16) == 12 * 2 * 8 * 16


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4e12),
        ("NVIDIA H100 PCIe", 756.0e12),
        ("NVIDIA H200", 989.4e12),
        ("NVIDIA A100-SXM4-80GB", 312.0e12),
        ("NVIDIA A100 80GB PCIe", 312.0e12),
    ],
)
def test_peak_flops_of_known_gpus_is_the_bf16_dense_peak(name, peak):
    assert peak_flops(name) == peak


@pytest.mark.parametrize("name", ["cpu", "NVIDIA GeForce RTX 3090", "", None])
def test_peak_flops_is_unknown_for_cpus_and_other_gpus(name):
    assert peak_flops(name) is None
