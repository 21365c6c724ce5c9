"""Where a decoder layer's step time goes, per recipe: GPU kernel time by kind, from torch.profiler.

    python -m benchmarks.kernels --out profile.json                          # 7B shape, bf16 and the TE recipes, compiled
    python -m benchmarks.kernels --recipes bf16 te:blockwise --shapes qwen2.5-1.5b --compile 0

Each recipe's layer is built and stepped exactly as the benchmarks do (benchmarks/cases.py:
forward + backward of one decoder layer on the shape's 8192 tokens), warmed up, then profiled over
--steps steps. Kernels are grouped by their names into kinds (GEMM, attention, FP8 casts and
transposes, Inductor-fused elementwise, norm, other): the question it answers is why one recipe's step is slower than another's
(issue 8: te:blockwise's GEMMs, or its quantisation?). Kinds are matched by name patterns
(KINDS below), so a new kernel family can land in "other"; the top kernels are listed by name
for that reason. Device times are sums of kernel durations per step, not wall time (kernels on
one stream do not overlap here, so the two are close).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import torch

DEFAULT_RECIPES = ("bf16", "te:delayed", "te:blockwise", "torchao:tensorwise")
# (kind, pattern over the lower-cased kernel name); the first match wins. Inductor's pointwise,
# reduction and persistent-reduction kernels come first: they are named after every op they fuse,
# so one that feeds a GEMM reads "triton_poi_fused__scaled_mm_..." and would otherwise count as a
# GEMM (torchao's FP8 casts live in them). Inductor's GEMM templates (triton_tem_) stay GEMMs.
KINDS = (
    ("inductor fused", r"^triton_(poi|red|per)_"),
    ("attention", r"flash|fmha|attention|sdpa"),
    ("gemm", r"gemm|matmul|nvjet|xmma|cutlass|cublas|wgmma|scaled_mm|\bmm\b|addmm|^triton_tem_"),
    ("fp8 cast/transpose", r"quantiz|cast|transpose|amax|fp8|float8|scale"),
    ("norm", r"norm"),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, lowered):
            return kind
    return "other"


def summarize(kernels: list[tuple[str, float, int]], steps: int, top: int = 12) -> dict:
    """{"per_step_ms": {kind: ms}, "total_ms", "top": [(name, kind, ms, calls)]} from (name, total_us, calls) rows."""
    by_kind: dict[str, float] = defaultdict(float)
    for name, total_us, _ in kernels:
        by_kind[kind_of(name)] += total_us / 1e3 / steps
    ranked = sorted(kernels, key=lambda row: -row[1])[:top]
    return dict(
        per_step_ms=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        total_ms=sum(by_kind.values()),
        top=[
            dict(name=n, kind=kind_of(n), ms_per_step=us / 1e3 / steps, calls_per_step=c / steps) for n, us, c in ranked
        ],
    )


def profile_step(timed, device: torch.device, steps: int, warmup: int) -> dict:
    """summarize() of `steps` profiled calls of a benchmarks.cases.Timed step, after `warmup` untimed
    ones, plus every kernel's per-step time ("kernels")."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        timed.reset()
        timed.step()
    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        for _ in range(steps):
            timed.step()
    rows = []
    for event in prof.key_averages():
        total = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        if total > 0 and (device.type != "cuda" or event.device_type == torch.autograd.DeviceType.CUDA):
            rows.append((event.key, float(total), int(event.count)))
    # Every kernel's total as well, so a saved profile can be regrouped later without the GPU.
    kernels = [
        dict(name=n, us_per_step=us / steps, calls_per_step=c / steps) for n, us, c in sorted(rows, key=lambda r: -r[1])
    ]
    return dict(**summarize(rows, steps), kernels=kernels)


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
        args.out.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), results=results), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
