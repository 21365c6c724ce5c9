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

Needs a CUDA GPU with Triton; figures belong in docs/PERFORMANCE.md with the machine named.
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
    return {"tokens": tokens, "rows": rows}


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
    # the tiles per program and warps the autotuner chose, per (k, weight?, dtypes)
    result["configs"] = {str(key): str(config) for key, config in blockquant._kernel().cache.items()}
    print("\n".join(f"config {key}: {config}" for key, config in result["configs"].items()))
    print("kernel == reference, byte for byte" if exact else "KERNEL DIFFERS FROM THE REFERENCE")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
