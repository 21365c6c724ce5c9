"""Helpers for trainer tests: tiny suites, run directories and a runner."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from harness.store import RunDir, atomic_write_json
from harness.suite import RunSpec, Suite, plan

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write_corpus(path: Path, docs: int = 60) -> Path:
    """A small jsonl CPT corpus with varied, deterministic text."""
    lines = []
    for i in range(docs):
        text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(20 + i % 15))
        lines.append(json.dumps({"text": f"doc {i}: {text}."}))
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_suite(
    data_path: str,
    *,
    arms: dict | None = None,
    steps: int = 8,
    checkpoint_every: int | None = 4,
    divergence: dict | None = None,
    sft: bool = False,
) -> Suite:
    stages = {
        "cpt": {
            "kind": "cpt",
            "data": {"path": data_path},
            "seq_len": 32,
            "global_batch_size": 4,
            "micro_batch_size": 2,
            "steps": steps,
            "checkpoint_every": checkpoint_every,
            "optim": {"lr": 3e-3, "min_lr": 3e-4},
            "schedule": {"kind": "wsd", "warmup_steps": 2, "decay_fraction": 0.25},
        }
    }
    if sft:
        stages["sft"] = {
            "kind": "sft",
            "init_from": "cpt",
            "data": {"path": "builtin:arith-sft", "max_samples": 64},
            "seq_len": 64,
            "global_batch_size": 8,
            "micro_batch_size": 4,
            "steps": 4,
            "optim": {"lr": 1e-3},
            "schedule": {"kind": "cosine", "warmup_fraction": 0.25},
        }
    return Suite.model_validate({
        "name": "t", "model": {"preset": "tiny", "tokenizer": "builtin:tiny-bpe"},
        "arms": arms or {"bf16": "bf16"}, "topology": {"device": "cpu"}, "stages": stages,
        "divergence": divergence or {},
    })  # fmt: skip


def prepare(runs: Path, spec: RunSpec) -> RunDir:
    """Create the run directory with spec.json, as the pipeline does."""
    run_dir = RunDir(runs / spec.suite / spec.run_id)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir.spec, spec.model_dump(mode="json"))
    return run_dir


def specs(suite: Suite) -> dict[str, RunSpec]:
    return {s.run_id: s for s in plan(suite)}


def losses(run_dir: RunDir) -> list[float]:
    return [r["loss"] for r in run_dir.read_metrics()]


def qwen2_model(config: dict, seed: int = 0) -> Qwen2ForCausalLM:
    """A random-init FP32 Qwen2 model of `config` (Qwen2Config fields, SDPA attention) whose norm gains and
    biases are non-trivial, so that a fused layer that swaps or drops one shows."""
    torch.manual_seed(seed)
    qwen2 = Qwen2Config(**config)
    qwen2._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(qwen2).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("layernorm.weight", "bias")):
                p.normal_(1.0 if "layernorm" in name else 0.0, 0.5)
    return model
