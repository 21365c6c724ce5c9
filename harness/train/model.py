"""Model builder: Qwen2 shapes with random init (presets) or a local checkpoint.

The presets copy the config.json numbers of the released Qwen2.5 base models, so a random-init
run has the real model's shape (and therefore its speed and memory) without downloading it.
Precision backends are applied by the trainer *after* this, so every arm starts from the same
weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.errors import InvalidInput
from harness.train.presets import PRESETS, QWEN_VOCAB  # noqa: F401  (QWEN_VOCAB: benchmarks import it here)


def preset_config(cfg, vocab_size: int):
    """A Qwen2Config for a preset; cfg.num_layers overrides the depth."""
    from transformers import Qwen2Config

    shape = dict(PRESETS[cfg.preset])
    rope_theta = shape.pop("rope_theta")
    shape.setdefault("vocab_size", vocab_size)
    if cfg.num_layers:
        shape["num_hidden_layers"] = cfg.num_layers
    if shape["vocab_size"] < vocab_size:
        raise InvalidInput(
            f"model.tokenizer: {vocab_size} tokens do not fit preset {cfg.preset!r} ({shape['vocab_size']} embeddings)"
        )
    return Qwen2Config(
        **shape,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        attention_dropout=0.0,
        use_cache=False,
    )


def build_model(cfg, vocab_size: int, seed: int, *, init_path: str | Path | None = None):
    """Qwen2ForCausalLM from cfg, its parameters in cfg.master_dtype (default float32).

    `init_path` (a stage's predecessor's final checkpoint) wins over cfg.path and the preset.
    The seed fixes the random init, so matched arms start from identical weights. A random init
    happens on the current default device (the trainer sets it to the GPU for one-process runs:
    seconds instead of minutes for 7B); a checkpoint loads on CPU.
    """
    from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

    torch.manual_seed(seed)
    path = init_path or cfg.path
    if path:
        if not Path(path).is_dir():
            raise InvalidInput(f"model.path: {path} is not a local checkpoint folder")
        try:
            with torch.device("cpu"):
                model = AutoModelForCausalLM.from_pretrained(
                    str(path), dtype=torch.float32, attn_implementation=cfg.attention, local_files_only=True
                )
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"model.path: cannot load {path} ({exc})") from None
    else:
        config = preset_config(cfg, vocab_size)
        config._attn_implementation = cfg.attention
        model = Qwen2ForCausalLM(config).float()
    model.config.use_cache = False
    return model.to(getattr(torch, cfg.master_dtype))


def apply_runtime_options(model, cfg) -> None:
    """Activation checkpointing and torch.compile, identical for every arm (called after precision)."""
    if cfg.activation_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name goes in v6
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if cfg.compile:
        # Compiling each decoder layer (not the whole model) compiles one graph reused by all
        # layers and keeps graph breaks out of the embedding and loss code.
        for layer in model.model.layers:
            layer.compile()
