"""Telemetry overhead on a GPU: the same training process, blocks of steps with telemetry off and on.

    python scripts/telemetry_overhead.py suites/gpu-1.5b.toml --arm bf16 --out overhead.json

"off" runs K optimiser steps with one device synchronisation at the end; "on" runs K steps
inside Telemetry (per-step synchronised timing, allocator peak resets, metrics.jsonl, NVML
sampler thread). Blocks alternate off/on so drift affects both; the overhead is the ratio of
the medians of the per-block mean step times. Not a test: it needs the GPU it measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from harness.store import RunDir, atomic_write_json
from harness.suite import load_suite, plan
from harness.telemetry import Telemetry, flops_per_token
from harness.train.batches import Batches
from harness.train.data import build_data
from harness.train.model import apply_runtime_options, build_model
from harness.train.precision.registry import get_backend
from harness.train.tokenizer import load_tokenizer
from harness.train.trainer import _param_groups, train_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("--arm", default="bf16")
    parser.add_argument("--blocks", type=int, default=6, help="blocks per mode")
    parser.add_argument("--steps", type=int, default=15, help="steps per block")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    spec = next(s for s in plan(load_suite(args.suite)) if s.arm == args.arm)
    device = torch.device("cuda")
    backend = get_backend(spec.recipe)
    tokenizer = load_tokenizer(spec.model)
    work = Path(tempfile.mkdtemp())
    data = build_data(spec.stage, tokenizer, cache_dir=work / ".cache")
    model = backend.convert(build_model(spec.model, len(tokenizer), spec.seed).to(device))
    apply_runtime_options(model, spec.model)
    optimizer = torch.optim.AdamW(_param_groups(model, 0.1), lr=1e-5, fused=True)
    batches = Batches(data, spec.stage, spec.seed, pad_id=tokenizer.pad_token_id, eos_id=tokenizer.eos_token_id)

    def step():
        batch = batches.next()
        return train_step(model, optimizer, backend, batch.micro_batches[0], batch, spec, device)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()

    per_step = {"off": [], "on": []}
    for block in range(2 * args.blocks):
        mode = "off" if block % 2 == 0 else "on"
        if mode == "off":
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            torch.cuda.synchronize()
            per_step[mode].append((time.perf_counter() - t0) / args.steps)
            continue
        run_dir = RunDir(work / f"block{block}")
        run_dir.path.mkdir(parents=True)
        tel = Telemetry(
            run_dir, spec, device=device, flops_per_token=flops_per_token(model.config, spec.stage.seq_len),
            total_steps=args.steps, quiet=True,
        )  # fmt: skip
        tel.start(0)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(1, args.steps + 1):
            with tel.step(i) as rec:
                loss, grad_norm, tokens = step()
                rec.update(loss=loss, lr=1e-5, grad_norm=grad_norm, tokens=tokens)
        torch.cuda.synchronize()
        per_step[mode].append((time.perf_counter() - t0) / args.steps)
        tel.finish("completed")
    off, on = statistics.median(per_step["off"]), statistics.median(per_step["on"])
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "suite": spec.suite,
        "arm": spec.arm,
        "tokens_per_step": spec.stage.global_batch_size * spec.stage.seq_len,
        "compile": spec.model.compile,
        "blocks_per_mode": args.blocks,
        "steps_per_block": args.steps,
        "per_block_step_s": per_step,
        "median_step_s_off": off,
        "median_step_s_on": on,
        "overhead_pct": 100.0 * (on / off - 1.0),
    }
    atomic_write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "per_block_step_s"}, indent=2))


if __name__ == "__main__":
    main()
