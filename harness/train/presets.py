"""Model shapes a suite can name as `model.preset` (random init), importable without torch.

The suite models validate the name against this table and the model builder reads the shape
from it, so a preset is declared once.
"""

from __future__ import annotations

QWEN_VOCAB = 151936
# config.json of Qwen/Qwen2.5-{0.5B,1.5B,7B} (hidden, layers, heads, kv heads, MLP width, ...).
PRESETS: dict[str, dict] = {
    "tiny": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=176, max_position_embeddings=2048, rope_theta=10000.0, tie_word_embeddings=True,
    ),
    "qwen2.5-0.5b": dict(
        hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
        intermediate_size=4864, max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True,
        vocab_size=QWEN_VOCAB,
    ),
    "qwen2.5-1.5b": dict(
        hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
        intermediate_size=8960, max_position_embeddings=131072, rope_theta=1000000.0, tie_word_embeddings=True,
        vocab_size=QWEN_VOCAB,
    ),
    "qwen2.5-7b": dict(
        hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
        intermediate_size=18944, max_position_embeddings=131072, rope_theta=1000000.0, tie_word_embeddings=False,
        vocab_size=QWEN_VOCAB,
    ),
}  # fmt: skip
