"""Where a decoder layer's step time goes, per recipe: GPU kernel time by kind, from torch.profiler.

    python -m benchmarks.kernels --out profile.json                          # 7B shape, bf16 and the TE recipes, compiled
    python -m benchmarks.kernels --recipes bf16 te:blockwise --shapes qwen2.5-1.5b --compile 0

Each recipe's layer is built and stepped exactly as the benchmarks do (benchmarks/cases.py:
forward + backward of one decoder layer on the shape's 8192 tokens), warmed up, then profiled over
--steps steps. Kernels are grouped by their names into kinds (GEMM, attention, FP8 casts and
transposes, Inductor-fused elementwise, communication, norm, other): the question it answers is
why one recipe's step is slower than another's (issue 8: te:blockwise's GEMMs, or its
quantisation?). Kinds are matched by name patterns (harness.telemetry.kernels.KINDS, which a
suite's `telemetry.profile_steps` uses too), so a new kernel family can land in "other"; the top
kernels are listed by name for that reason. Device times are sums of kernel durations per step,
not wall time (kernels on one stream do not overlap here, so the two are close).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from harness.telemetry.kernels import KINDS, activities, kernel_rows, kind_of, summarize

__all__ = ["KINDS", "kind_of", "profile_step", "summarize"]
DEFAULT_RECIPES = ("bf16", "te:delayed", "te:blockwise", "torchao:tensorwise")


def profile_step(timed, device: torch.device, steps: int, warmup: int) -> dict:
    """summarize() of `steps` profiled calls of a benchmarks.cases.Timed step, after `warmup` untimed ones."""
    from torch.profiler import profile

    for _ in range(warmup):
        timed.reset()
        timed.step()
    with profile(activities=activities(device)) as prof:
        for _ in range(steps):
            timed.step()
    return summarize(kernel_rows(prof, device), steps)


def run(recipes, shapes, compile: bool, steps: int, warmup: int, device: torch.device) -> list[dict]:
    from benchmarks.cases import SHAPES, available_backend, layer_step

    results = []
    for shape_name in shapes:
        for recipe in recipes:
            backend, refused = available_backend(recipe, device)
            if refused:
                results.append(dict(shape=shape_name, recipe=recipe, refused=refused))
                continue
            timed = layer_step("decoder_layer", SHAPES[shape_name], backend, device, compile)
            result = profile_step(timed, device, steps, warmup)
            results.append(dict(shape=shape_name, recipe=recipe, compile=compile, **result))
            print(table(results[-1]), flush=True)
    return results


def table(result: dict) -> str:
    if "refused" in result:
        return f"{result['shape']} {result['recipe']}: refused ({result['refused']})"
    kinds = ", ".join(f"{k} {ms:.2f}" for k, ms in result["per_step_ms"].items())
    lines = [f"{result['shape']} {result['recipe']}: {result['total_ms']:.2f} ms of kernels per step ({kinds})"]
    lines += [
        f"    {t['ms_per_step']:8.3f} ms  x{t['calls_per_step']:<4.0f} {t['kind']:<18} {t['name'][:110]}"
        for t in result["top"]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cases import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--shapes", nargs="+", default=["qwen2.5-7b"], choices=list(SHAPES))
    parser.add_argument("--compile", choices=("0", "1"), default="1", help="per-layer torch.compile (every arm alike)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.kernels needs a CUDA GPU (it sums GPU kernel times)", file=sys.stderr)
        return 2
    results = run(args.recipes, args.shapes, args.compile == "1", args.steps, args.warmup, torch.device("cuda"))
    if args.out:
        # Imported here, as benchmarks.cases is: the tests load this file on its own.
        from benchmarks.environment import machine

        info = dict(device=torch.cuda.get_device_name(), versions=machine(), results=results)
        args.out.write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
