"""Model FLOPs per trained token and the BF16 dense peak of known GPUs (for MFU).

Formula (the PaLM appendix B / Megatron / torchtitan `get_num_flop_per_token` convention):

    flops_per_token = 6 * N + 12 * L * H * T

- N: non-embedding parameters. Every parameter of the decoder layers (q/k/v/o projections and
  their biases, the gated MLP, both RMSNorms), the final norm, and the lm_head matrix
  (vocab x hidden) counted as a matmul even when its weight is tied to the input embedding:
  the output projection is a real matmul on every token, while the embedding lookup is not.
  The 6 is 2 FLOPs per multiply-add x (1 forward + 2 backward) matmuls per weight.
- 12 * L * H * T: attention scores (Q K^T) and the weighted sum (P V); 2 matmuls forward,
  4 backward, 2 FLOPs per multiply-add. L = layers, H = query heads x head_dim (the hidden size
  for Qwen2), T = sequence length.
- Causal-mask convention: the attention term is NOT halved for the causal mask, as in PaLM and
  torchtitan, so our MFU is comparable with theirs. Flash attention's backward recomputation
  is not counted (MFU counts model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

from typing import Any

# BF16 dense (no 2:4 sparsity) tensor-core peaks, FLOP/s, from NVIDIA's data sheets.
# MFU of every arm (BF16 and FP8 alike) is measured against the BF16 dense peak, so arms are
# compared on one scale: an FP8 arm's higher MFU then means more useful model work per second.
_PEAKS: tuple[tuple[tuple[str, ...], float], ...] = (
    # order matters: the first entry whose every keyword is in the name wins
    (("h200", "nvl"), 835.0e12),  # H200 NVL (lower power limit)
    (("h200",), 989.4e12),  # H200 SXM and GH200: same tensor cores and clocks as H100 SXM
    (("h100", "pcie"), 756.0e12),  # H100 PCIe
    (("h100", "nvl"), 835.0e12),  # H100 NVL (per GPU)
    (("h100",), 989.4e12),  # H100 SXM5 (names such as "NVIDIA H100 80GB HBM3")
    (("a100",), 312.0e12),  # A100 SXM and PCIe, 40 and 80 GB
)


def peak_flops(device_name: str | None) -> float | None:
    """BF16 dense peak FLOP/s for a CUDA device name (torch.cuda.get_device_name), else None.

    None for CPUs and unknown GPUs: MFU is then reported as null rather than guessed.
    """
    if not device_name:
        return None
    name = device_name.lower()
    for keywords, peak in _PEAKS:
        if all(k in name for k in keywords):
            return peak
    return None


def non_embedding_params(config: Any) -> int:
    """Parameters counted by the 6N term for a transformers Qwen2 config (see module docstring)."""
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attention = hidden * q_out + q_out  # q_proj weight + bias (Qwen2 has q/k/v biases)
    attention += 2 * (hidden * kv_out + kv_out)  # k_proj, v_proj
    attention += q_out * hidden  # o_proj, no bias
    mlp = 3 * hidden * config.intermediate_size  # gate, up, down
    norms = 2 * hidden  # input and post-attention RMSNorm
    per_layer = attention + mlp + norms
    lm_head = config.vocab_size * hidden
    return config.num_hidden_layers * per_layer + hidden + lm_head  # + final norm


def flops_per_token(config: Any, seq_len: float) -> float:
    """Training model FLOPs per token: 6 * N + 12 * L * H * T (see module docstring)."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    attention = 12 * config.num_hidden_layers * heads * head_dim * seq_len
    return float(6 * non_embedding_params(config) + attention)
