"""deepgemm:blockwise's quantisation kernels against what Inductor made of the reference (issue 25).

    python -m benchmarks.blockquant --out blockquant.json      # Qwen2.5-7B shapes, 16,384 tokens

For every tensor a 7B decoder layer quantises in a training step (the linears' inputs x and output
gradients dy in 1x128 groups, both layouts; their weights in 128x128 blocks, both layouts):

  - exact: the Triton kernel's bytes and scales against the reference (blockquant.py's torch code),
    under every configuration its autotuner may pick, at training's magnitudes (weights N(0, 0.02),
    activations N(0, 1), gradients N(0, 1e-3)) and with columns spread over four decades, at the
    given tokens and at tokens - 37 (not a multiple of 128: the zero padding of x^T); a kernel that
    differs in one byte is reported, with how many. (Spread columns alone once passed a kernel
    whose W^T bytes were wrong for FP32 weights of training's size: both inputs are checked.)
  - time: the Triton kernel (the configuration its autotuner picked for the shape, printed), and
    the reference compiled by Inductor (the recipe's quantisation before the kernel), CUDA events
    over --iters calls; GB/s counts the bytes the kernel must move (input read once, both FP8
    layouts and the scales written)

The SwiGLU kernels (silu(gate) * up quantised for the down projection, d[gate | up] for the
gate/up projection, from h = [gate | up] at 2 x 18,944 columns) compute a sigmoid, which Triton and
torch may round differently in the last bit: they are checked against the reference to a tolerance
(at most 1 in 10,000 FP8 bytes different, every scale within 1e-6 relative) in every configuration,
and timed.

Exit status: 0 all good, 1 the cast-transpose kernel differs from the reference, 3 only a SwiGLU kernel
is outside its tolerance. Needs a CUDA GPU with Triton; figures belong in docs/PERFORMANCE.md with the
machine named.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from harness.train.precision import blockquant

# (what, rows, cols, dtype) at `tokens` tokens: the q/k/v input is the RMSNorm's FP32 output under
# autocast with FP32 master weights; o's and down's inputs and every dy are BF16; weights FP32.
HIDDEN, FFN, KV = 3584, 18944, 512


def tensors(tokens: int) -> list[tuple[str, int, int, torch.dtype, bool, float]]:
    """(name, rows, cols, dtype, weight?, typical size) of each distinct quantisation in one 7B layer's step."""
    f32, bf16 = torch.float32, torch.bfloat16
    return [
        ("x qkv (fp32)", tokens, HIDDEN, f32, False, 1.0), ("x o / dy o", tokens, HIDDEN, bf16, False, 1.0),
        ("x down", tokens, FFN, bf16, False, 1.0), ("dy k, v", tokens, KV, bf16, False, 1e-3),
        ("dy gate, up", tokens, FFN, bf16, False, 1e-3),
        ("W q, o", HIDDEN, HIDDEN, f32, True, 0.02), ("W k, v", KV, HIDDEN, f32, True, 0.02),
        ("W gate, up", FFN, HIDDEN, f32, True, 0.02), ("W down", HIDDEN, FFN, f32, True, 0.02),
    ]  # fmt: skip


def _reference(x: torch.Tensor, weight: bool):
    return blockquant._blocks_reference(x) if weight else blockquant._rows_cols_reference(x)


def _differing(got, want, rows: int, weight: bool) -> list[int]:
    """Differing FP8 bytes / scales in (q, scales, q_t, scales_t); row scales' columns past m are TMA padding."""
    counts = []
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if i == 1 and not weight:
            a, b = a[:, :rows], b[:, :rows]
        if a.dtype == blockquant.FP8:
            a, b = a.view(torch.uint8), b.view(torch.uint8)
        counts.append(int((a != b).sum()) if a.shape == b.shape else -1)  # -1: shapes differ
    return counts


def differences(x: torch.Tensor, weight: bool) -> dict:
    """{configuration: [differing q, scales, q_t, scales_t]} for the autotuned kernel and every configuration."""
    want = _reference(x, weight)
    out = {"autotuned": _differing(blockquant._triton_quantize(x, weight), want, x.shape[0], weight)}
    for config in blockquant.kernel_configs():
        label = f"K_TILES {config.kwargs['K_TILES']} warps {config.num_warps} stages {config.num_stages}"
        out[label] = _differing(blockquant._triton_quantize(x, weight, config), want, x.shape[0], weight)
    return out


def moved_bytes(rows: int, cols: int, dtype: torch.dtype) -> int:
    """Input read once, two FP8 layouts written; scales (1/128 of that) left out."""
    return rows * cols * (torch.empty((), dtype=dtype).element_size() + 2)


def timings(x: torch.Tensor, weight: bool, iters: int) -> dict:
    """The Triton kernel and the Inductor-compiled reference on x: ms per call and GB/s moved."""
    # Imported here, as benchmarks.kernels imports benchmarks.cases: the tests load this file on its own.
    from benchmarks.gemms import time_ms  # CUDA events over back-to-back calls, after 3 warm-up calls

    compiled = torch.compile(lambda t: _reference(t, weight))
    gb = moved_bytes(*x.shape, x.dtype) / 1e9
    out = {}
    for label, fn in (("triton", lambda: blockquant._triton_quantize(x, weight)), ("inductor", lambda: compiled(x))):
        ms = time_ms(fn, iters)
        out[label] = {"ms": ms, "gb_per_s": gb / ms * 1e3}
    return out


def near(got, want, rows: int) -> dict:
    """How far the SwiGLU kernels' outputs are from the reference: differing FP8 bytes (and their share)
    and scales more than 1e-6 apart (relative), per output; `within` the tolerance or not."""
    out = {"bytes": [], "scales": []}
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if i == 1:
            a, b = a[:, :rows], b[:, :rows]  # the row scales' TMA padding is never read
        if a.dtype == blockquant.FP8:
            out["bytes"].append(int((a.view(torch.uint8) != b.view(torch.uint8)).sum()))
        else:
            out["scales"].append(int(((a - b).abs() > 1e-6 * b.abs()).sum()))
    total = got[0].numel() + got[2].numel()
    out["byte_share"] = sum(out["bytes"]) / total
    out["within"] = out["byte_share"] <= 1e-4 and not any(out["scales"])
    return out


def swiglu_rows(tokens: int, iters: int) -> list[dict]:
    """The two SwiGLU kernels at the 7B MLP's shape: tolerance check in every configuration, then timing."""
    from benchmarks.gemms import time_ms

    h = torch.randn(tokens, 2 * FFN, device="cuda").bfloat16()
    grad = (torch.randn(tokens, FFN, device="cuda") * 1e-3).bfloat16()
    rows = []
    for name, args, reference in (("swiglu fwd", (h,), blockquant._swiglu_reference),
                                  ("swiglu bwd", (h, grad), blockquant._swiglu_backward_reference)):  # fmt: skip
        want = reference(*args)
        checks = {"autotuned": near(blockquant._triton_swiglu(*args), want, tokens)}
        config_ms = {}
        for config in blockquant.swiglu_configs():
            label = f"warps {config.num_warps}"
            checks[label] = near(blockquant._triton_swiglu(*args, config=config), want, tokens)
            config_ms[label] = time_ms(
                lambda args=args, config=config: blockquant._triton_swiglu(*args, config=config), iters
            )
        ms = time_ms(lambda args=args: blockquant._triton_swiglu(*args), iters)
        read = sum(t.numel() * t.element_size() for t in args)
        written = sum(t.numel() * t.element_size() for t in want)
        rows.append({"tensor": name, "rows": tokens, "cols": h.shape[1], "checks": checks, "configs_ms": config_ms,
                     "triton": {"ms": ms, "gb_per_s": (read + written) / 1e9 / ms * 1e3}})  # fmt: skip
        del want
    return rows


def measure(tokens: int, iters: int) -> dict:
    rows = []
    for name, m, k, dtype, weight, size in tensors(tokens):
        x = (torch.randn(m, k, device="cuda") * size).to(dtype)
        spread = (torch.randn(m, k, device="cuda") * torch.logspace(-2, 2, k, device="cuda")).to(dtype)
        row = {"tensor": name, "rows": m, "cols": k, "dtype": str(dtype).removeprefix("torch."),
               "differing": {"training size": differences(x, weight), "spread": differences(spread, weight)}}  # fmt: skip
        if not weight:
            row["differing"]["unaligned"] = differences(x[: m - 37].contiguous(), weight)
        row.update(timings(x, weight, iters))
        rows.append(row)
        del x, spread
        torch.cuda.empty_cache()
    return {"tokens": tokens, "rows": rows, "swiglu": swiglu_rows(tokens, iters)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.blockquant: the Triton kernels need a CUDA GPU; none here", file=sys.stderr)
        return 2
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, **measure(args.tokens, args.iters)}
    exact = True
    for row in result["rows"]:
        wrong = {f"{case}, {config}": counts for case, configs in row["differing"].items()
                 for config, counts in configs.items() if any(counts)}  # fmt: skip
        exact &= not wrong
        print(f"{row['tensor']:14s} {row['rows']:6d} x {row['cols']:5d} {row['dtype']:8s}  "
              f"triton {row['triton']['ms']:6.3f} ms {row['triton']['gb_per_s']:5.0f} GB/s  "
              f"inductor {row['inductor']['ms']:6.3f} ms  "
              + (f"DIFFERS (q, scales, q_t, scales_t): {wrong}" if wrong else "exact in every configuration"))  # fmt: skip
    result["exact"] = exact
    within = True
    for row in result["swiglu"]:
        outside = {config: check for config, check in row["checks"].items() if not check["within"]}
        within &= not outside
        print(f"{row['tensor']:14s} {row['rows']:6d} x {row['cols']:5d} bf16      "
              f"triton {row['triton']['ms']:6.3f} ms {row['triton']['gb_per_s']:5.0f} GB/s  "
              + (f"OUTSIDE THE TOLERANCE: {outside}" if outside else
                 f"within the tolerance in every configuration (autotuned: {row['checks']['autotuned']})"))  # fmt: skip
        print(" " * 15 + "per configuration: " + ", ".join(f"{c} {t:.3f} ms" for c, t in row["configs_ms"].items()))
    # the configuration the autotuner chose per kernel and key (k or f, weight?, dtypes)
    kernels = blockquant._kernels()
    result["configs"] = {f"{kernel.fn.__name__} {key}": str(config)
                         for kernel in (kernels.cast_transpose, kernels.swiglu_cast_transpose,
                                        kernels.swiglu_backward_cast_transpose)
                         for key, config in kernel.cache.items()}  # fmt: skip
    print("\n".join(f"config {key}: {config}" for key, config in result["configs"].items()))
    result["swiglu_within"] = within
    print(
        "cast-transpose == reference, byte for byte"
        if exact
        else "THE CAST-TRANSPOSE KERNEL DIFFERS FROM THE REFERENCE"
    )
    print("SwiGLU kernels within the tolerance" if within else "A SWIGLU KERNEL IS OUTSIDE THE TOLERANCE")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 1 if not exact else 3 if not within else 0


if __name__ == "__main__":
    sys.exit(main())
