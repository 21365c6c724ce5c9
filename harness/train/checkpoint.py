"""Resumable checkpoints and the final Hugging Face export.

    checkpoints/step-000040/state.pt   model, optimiser, scheduler, data position, RNG states, step
    checkpoints/final/                 config.json, model.safetensors, tokenizer files (eval, vLLM)

A checkpoint is written to `step-XXXXXX.tmp` and renamed when complete, so a kill mid-write
leaves only a .tmp folder that `latest_checkpoint` ignores. Non-tensor state is stored as plain
Python types so `torch.load(weights_only=True)` can read it.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from harness.errors import InvalidInput

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
STATE_FILE = "state.pt"


def rng_state() -> dict:
    """torch / CUDA / numpy / python RNG states as tensors and plain types."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": np_state[0], "state": np_state[1].tolist(), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }  # fmt: skip


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["key"], np.array(n["state"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(folder: Path, step: int, model, optimizer, scheduler, data_position: dict) -> Path:
    """Write checkpoints/step-XXXXXX atomically (temp folder + rename); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    tmp = folder / f"step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "data": dict(data_position),
        "rng": rng_state(),
    }
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete step-XXXXXX folder with the highest step, or None."""
    if not folder.is_dir():
        return None
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict]:
    """Restore model, optimiser, scheduler and RNG states in place; return (step, data position)."""
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a torn or foreign file
        raise InvalidInput(
            f"{path / STATE_FILE}: unreadable checkpoint ({exc}); delete this folder to resume from an earlier one"
        ) from None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"]), state["data"]


def export_final(folder: Path, model, tokenizer, dtype: torch.dtype) -> Path:
    """checkpoints/final: a plain Hugging Face folder, whatever modules a precision backend swapped in.

    The weights are copied into a freshly built model of the same config (backend extras such as
    Transformer Engine's `_extra_state` are dropped), cast to `dtype`, saved with save_pretrained.
    """
    from transformers import AutoModelForCausalLM

    state = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(model.config, dtype=dtype)
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
    return folder
