"""The final Hugging Face export: checkpoints/final (config.json, model.safetensors, tokenizer files),
what evaluation and vLLM read, whatever modules a precision backend swapped in for training."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from harness.train.distributed import barrier, process_count, process_rank


def full_model_state(model) -> dict:
    """Every weight, unsharded, on CPU: on rank 0 under FSDP2 (other ranks get {}), else model.state_dict()."""
    if process_count() == 1:
        return model.state_dict()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def export_final(folder: Path, model, tokenizer, dtype: torch.dtype, export_state=None) -> Path:
    """checkpoints/final: a plain Hugging Face folder, whatever modules a precision backend swapped in.

    Collective: the full weights are gathered (under FSDP2) and rank 0 writes. `export_state(state,
    config) -> state` is the precision backend's way back to HF names (PrecisionBackend.export_state:
    Transformer Engine splits its fused layers into q/k/v and gate/up and drops its `_extra_state`);
    None keeps the state as it is. The weights are copied into a freshly built model of the same
    config, cast to `dtype` and saved with save_pretrained.
    """
    full = full_model_state(model)
    if process_rank() == 0:
        if export_state is not None:
            full = export_state(full, model.config)
        _write_hf(folder, model.config, full, tokenizer, dtype)
    barrier()
    return folder


def _write_hf(folder: Path, config, full: dict, tokenizer, dtype: torch.dtype) -> None:
    from transformers import AutoModelForCausalLM

    state = {k: v.detach().to("cpu", dtype) for k, v in full.items()}
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict(state, strict=True, assign=True)
    if plain.config.tie_word_embeddings:
        plain.tie_weights()
    plain.config.use_cache = True
    ids = [
        i for i in (tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id) if i is not None and i >= 0
    ]
    plain.generation_config.eos_token_id = ids  # a chat turn ends at <|im_end|>, a document at EOS
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.config.eos_token_id = tokenizer.eos_token_id
    plain.config.pad_token_id = tokenizer.pad_token_id
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
