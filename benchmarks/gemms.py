"""FP8 GEMMs of a decoder layer's linears, one kernel family beside another (issue 25).

    python -m benchmarks.gemms --out gemms.json                 # Qwen2.5-7B shapes, 16,384 tokens
    python -m benchmarks.gemms --backends per-tensor,deepgemm --tokens 8192
    python -m benchmarks.gemms --backends deepgemm,deepgemm-store --passes wgrad

For each linear (q/k/v fused, o, gate/up fused, down) and each of its three GEMMs, as the layer's
training step runs them (x [tokens, in], W [out, in], dy [tokens, out]):

    fwd    y  = x @ W^T     m = tokens, n = out, k = in
    dgrad  dx = dy @ W      m = tokens, n = in,  k = out
    wgrad  dW = dy^T @ x    m = out,    n = in,  k = tokens

the time of one GEMM (CUDA events over `--iters` back-to-back calls, after 3 warm-up calls), its
TFLOP/s and its relative error against the same product in FP32 (DeepGEMM's calc_diff:
1 - 2<a,b>/(<a,a> + <b,b>)). Operands are quantised once, outside the timing; quantisation and
transposes are the recipe's cost, not the GEMM's. Backends:

    per-tensor    torch._scaled_mm, one scale per operand (cuBLAS; te:delayed, torchao:tensorwise)
    cublas-block  torch.nn.functional.scaled_mm with 1x128 / 128x128 block scales (wgrad: 1x128 /
                  1x128), cuBLAS's block-scaled kernels, what te:blockwise calls (where this torch has it)
    deepgemm      DeepGEMM's gemm_fp8_fp8_bf16_nt (1x128 activations and gradients, 128x128
                  weights) and, for wgrad, wgrad_gemm_fp8_fp8_fp32_nt (1x128 x 1x128, FP32
                  output): scripts/stage_deepgemm.sh stages it (revision 3fc6728), the FP32 output
                  zeroed before each wgrad (the kernel as released adds into it)
    deepgemm-store the same GEMMs, the wgrad as deepgemm:blockwise calls it: BF16 output written, not
                  accumulated (`accumulate=False`, scripts/deepgemm-wgrad-store.patch)
    deepgemm-wide  deepgemm-store with the wgrad's shared-memory tile in BF16, so DeepGEMM's tuner may
                  pick BLOCK_M 256 (`wide_tile=True`, scripts/deepgemm-wgrad-wide.patch)

A backend this machine lacks is reported with why, not skipped silently. Needs a CUDA GPU with
FP8 (Hopper); measured figures belong in docs/PERFORMANCE.md with the machine named.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:  # DeepGEMM's JIT needs the system NVRTC loaded before torch's own copy (its tests import it first too)
    import cuda.bindings.nvrtc  # noqa: F401
except ImportError:
    pass

import torch  # noqa: E402

from harness.train.precision.blockquant import BLOCK, per_block, per_group  # noqa: E402  (the recipe's quantisers)

FP8 = torch.float8_e4m3fn
# Qwen2.5-7B: hidden 3584, 28 query / 4 KV heads of 128, FFN 18944; (out, in) of each linear.
LINEARS = {"qkv": (4608, 3584), "o": (3584, 3584), "gate_up": (37888, 3584), "down": (3584, 18944)}
LAYERS = 28
BACKENDS = ("per-tensor", "cublas-block", "deepgemm", "deepgemm-store", "deepgemm-wide")
PASSES = ("fwd", "dgrad", "wgrad")


def gemm_shapes(tokens: int) -> list[tuple[str, str, int, int, int]]:
    """(linear, pass, m, n, k) of every GEMM of one decoder layer's training step, as described above."""
    shapes = []
    for name, (out, inp) in LINEARS.items():
        shapes += [
            (name, "fwd", tokens, out, inp),
            (name, "dgrad", tokens, inp, out),
            (name, "wgrad", out, inp, tokens),
        ]
    return shapes


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(1 - 2 * (a * b).sum() / ((a * a).sum() + (b * b).sum()))


def time_ms(fn, iters: int) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def _per_tensor(a, b, wgrad: bool):
    qa, qb = a.to(FP8), b.to(FP8)  # the operands are N(0, 1): scale 1 keeps them in range
    one = torch.ones((), device=a.device)
    return lambda: torch._scaled_mm(qa, qb.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def _cublas_block(a, b, wgrad: bool):
    from torch.nn.functional import ScalingType, scaled_mm

    qa, sa = per_group(a)
    qb, sb = per_group(b) if wgrad else per_block(b)
    recipe_b = ScalingType.BlockWise1x128 if wgrad else ScalingType.BlockWise128x128
    # cuBLAS wants 1x128 scales outer-dim-major (M contiguous); 128x128 ones for B = qb.t() as
    # [K/128, N/128] (the H200 refused [N/128, K/128]: "scale_b must have shape 28 x 36 Float
    # elements, got [36, 28]"; this transposed view is what that message asks for, not yet re-run).
    sa = sa.t().contiguous().t()
    sb = sb.t().contiguous().t() if wgrad else sb.t()
    return lambda: scaled_mm(qa, qb.t(), sa, ScalingType.BlockWise1x128, sb, recipe_b, output_dtype=torch.bfloat16)


def _deepgemm(a, b, wgrad: bool, store: bool = False, wide: bool = False):
    import deep_gemm

    qa, sa = per_group(a)
    if wgrad:
        qb, sb = per_group(b)
        out = torch.zeros(a.shape[0], b.shape[0], device=a.device, dtype=torch.bfloat16 if store else torch.float32)

        def run():
            if store:  # written in BF16, as the recipe's weight gradient (the patched kernel)
                extra = {"wide_tile": True} if wide else {}  # scripts/deepgemm-wgrad-wide.patch
                deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt((qa, sa), (qb, sb), out, accumulate=False, **extra)
                return out
            out.zero_()  # the kernel accumulates into out (FP32), as a wgrad does over micro-batches
            deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt((qa, sa), (qb, sb), out)
            return out

        return run
    qb, sb = per_block(b)
    sa = deep_gemm.get_col_major_tma_aligned_tensor(sa)
    out = torch.empty(a.shape[0], b.shape[0], device=a.device, dtype=torch.bfloat16)

    def run():
        deep_gemm.gemm_fp8_fp8_bf16_nt((qa, sa), (qb, sb), out)
        return out

    return run


MAKERS = {"per-tensor": _per_tensor, "cublas-block": _cublas_block, "deepgemm": _deepgemm,
          "deepgemm-store": lambda a, b, wgrad: _deepgemm(a, b, wgrad, store=True),
          "deepgemm-wide": lambda a, b, wgrad: _deepgemm(a, b, wgrad, store=True, wide=True)}  # fmt: skip


def measure(backends: list[str], tokens: int, iters: int, passes: tuple[str, ...] = PASSES) -> dict:
    """Every GEMM of one layer (of `passes`) under every backend: {"rows": [...], "layer": {backend: {ms, tflops}},
    "unavailable": {...}}; "layer" sums the passes measured."""
    device = torch.device("cuda")
    rows, unavailable = [], {}
    for name, pas, m, n, k in (shape for shape in gemm_shapes(tokens) if shape[1] in passes):
        a = torch.randn(m, k, device=device)  # the NT form: out[m, n] = a[m, k] @ b[n, k]^T
        b = torch.randn(n, k, device=device)
        reference = a @ b.t()
        row = {"linear": name, "pass": pas, "m": m, "n": n, "k": k, "flop": 2 * m * n * k}
        for backend in backends:
            if backend in unavailable:
                continue
            try:
                fn = MAKERS[backend](a, b, pas == "wgrad")
                diff = rel_diff(fn(), reference)
                ms = time_ms(fn, iters)
            except Exception as exc:  # a backend this torch or machine lacks: said once, with why
                unavailable[backend] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                continue
            row[backend] = {"ms": ms, "tflops": row["flop"] / ms / 1e9, "rel_diff": diff}
        rows.append(row)
        del a, b, reference
        torch.cuda.empty_cache()
    layer = {}
    for backend in backends:
        timed = [r for r in rows if backend in r]
        if len(timed) == len(rows):
            ms = sum(r[backend]["ms"] for r in rows)
            layer[backend] = {"ms": ms, "tflops": sum(r["flop"] for r in rows) / ms / 1e9, "step_ms": LAYERS * ms}
    return {"tokens": tokens, "rows": rows, "layer": layer, "unavailable": unavailable}


def environment() -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name()}
    try:
        import deep_gemm

        env["deep_gemm"] = str(getattr(deep_gemm, "__file__", "?"))
    except ImportError as exc:
        env["deep_gemm"] = f"not importable ({exc})"
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)}")
    parser.add_argument("--tokens", type=int, default=16384, help="tokens per GEMM (a multiple of 128)")
    parser.add_argument("--passes", default=",".join(PASSES), help=f"comma-separated, of {', '.join(PASSES)}")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        print(
            f"benchmarks.gemms: unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}", file=sys.stderr
        )
        return 2
    passes = tuple(p.strip() for p in args.passes.split(",") if p.strip())
    if not passes or set(passes) - set(PASSES):
        print(
            f"benchmarks.gemms: --passes {args.passes!r}: a comma-separated subset of {', '.join(PASSES)}",
            file=sys.stderr,
        )
        return 2
    if args.tokens <= 0 or args.tokens % BLOCK:
        print(f"benchmarks.gemms: --tokens {args.tokens} is not a positive multiple of {BLOCK}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        print("benchmarks.gemms: FP8 GEMMs need a CUDA GPU with FP8 tensor cores (Hopper or newer); none here",
              file=sys.stderr)  # fmt: skip
        return 2
    result = {
        "environment": environment(),
        "passes": list(passes),
        **measure(backends, args.tokens, args.iters, passes),
    }
    for row in result["rows"]:
        cells = "  ".join(
            f"{b} {row[b]['ms'] * 1e3:8.1f} us {row[b]['tflops']:5.0f} TFLOP/s (diff {row[b]['rel_diff']:.1e})"
            for b in backends
            if b in row
        )
        print(f"{row['linear']:8s} {row['pass']:6s} m={row['m']:6d} n={row['n']:6d} k={row['k']:6d} | {cells}")
    for backend, total in result["layer"].items():
        print(
            f"per layer ({'+'.join(passes)}) {backend}: {total['ms']:.2f} ms ({total['tflops']:.0f} TFLOP/s); x{LAYERS}: {total['step_ms']:.1f} ms"
        )
    for backend, why in result["unavailable"].items():
        print(f"{backend}: unavailable here ({why})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
