#!/usr/bin/env bash
# deepgemm:blockwise on one H100/H200 (issue 25), each phase in one device call carrying .stage-dg
# (written here by scripts/stage_deepgemm.sh, with the wheels a training run needs):
#   bash scripts/gpu_deepgemm.sh quant      # benchmarks.blockquant: the Triton quantisers against the
#                                           # reference byte for byte, and their speed (exit 1 if they differ)
#   bash scripts/gpu_deepgemm.sh bench      # benchmarks.gemms at the 7B shapes, 16,384 tokens (GEMMS_ARGS adds options)
#   bash scripts/gpu_deepgemm.sh wide       # applies scripts/deepgemm-wgrad-wide.patch to /tmp/DG; the weight
#                                           # gradient with wide_tile=True against without: the same bits at the
#                                           # 7B shapes (exit 1 if not), then both timed
#   bash scripts/gpu_deepgemm.sh keep-faster # after wide: where it was not identical and faster, the wide
#                                           # patch is taken out of /tmp/DG again (a later step runs without it)
#   bash scripts/gpu_deepgemm.sh ncu        # Nsight Compute on the gate/up weight gradient as the recipe calls it
#                                           # (16,384 tokens): pipe utilisation and warp stall reasons
#   bash scripts/gpu_deepgemm.sh numerics   # DeepGEMMLinear and the fused SwiGLU MLP on the GPU against the
#                                           # exact FP32 ones, compiled against eager and, with TE staged
#                                           # (/tmp/site), the linear against te:blockwise's te.Linear
#   bash scripts/gpu_deepgemm.sh te-numerics # the same, once Transformer Engine's staged parts are in
#                                           # /tmp/stage (installed into /tmp/te-site): against te:blockwise
#   bash scripts/gpu_deepgemm.sh warm       # loss parity from a partly trained 1.5B (gpu_perf.sh warm) for
#                                           # bf16, te:blockwise and deepgemm:blockwise (TE staged)
#   bash scripts/gpu_deepgemm.sh step       # suites/gpu-7b.toml: bf16 vs deepgemm:blockwise on this card,
#                                           # each with a kernel profile of warm-up steps 8-10 (an 8-layer
#                                           # slice on an H100; STEP_SET adds overrides)
# The first DeepGEMM call of each shape JIT-compiles its kernel with nvcc (about a minute in all).
# Results (json, logs) go to $OUT (default /tmp/gpu-out).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
[ -d /tmp/DG ] || bash scripts/stage_deepgemm.sh --install > "$out/deepgemm-install.log" 2>&1 \
  || { cat "$out/deepgemm-install.log"; exit 1; }
source /tmp/DG/env.sh
export PYTHONPATH=/tmp/site:$PYTHONPATH:$PWD PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache NVTE_FRAMEWORK=pytorch
# Transformer Engine (numerics against te:blockwise) loads torch's own cuDNN, not the image's older one.
cudnn=$(python3 -c "import nvidia.cudnn, os; print(os.path.join(list(nvidia.cudnn.__path__)[0], 'lib'))" 2>/dev/null) \
  && export LD_LIBRARY_PATH=$cudnn:${LD_LIBRARY_PATH:-}
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nvcc --version | tail -2; cat /tmp/DG/REVISION
  python3 -c "import torch; print('torch', torch.__version__)"; } > "$out/env.txt" 2>&1
phase=${1:?phase: quant, bench, wide, keep-faster, ncu, numerics, te-numerics, step or warm}
if [ "$phase" = te-numerics ]; then
  # Transformer Engine's six parts in /tmp/stage (../shared/gpu/stage.sh; scripts/gpu_session.sh copies
  # them), installed into /tmp/te-site once all are in; then numerics, against te:blockwise too.
  waited=0
  until [ -f /tmp/stage/core.sha256 ] && [ "$(cat /tmp/stage/core.part* 2>/dev/null | sha256sum | cut -d' ' -f1)" \
      = "$(cut -d' ' -f1 /tmp/stage/core.sha256)" ] || [ -e /tmp/te-site/.te ]; do
    [ "$waited" -ge "${TE_WAIT_S:-600}" ] && { echo "Transformer Engine's parts did not all arrive"; exit 1; }
    sleep 5; waited=$((waited + 5))
  done
  if [ ! -e /tmp/te-site/.te ]; then
    sed 's#/tmp/site#/tmp/te-site#g' /tmp/stage/install.sh | bash > "$out/te-install.log" 2>&1 \
      && touch /tmp/te-site/.te || { cat "$out/te-install.log"; exit 1; }
  fi
  export PYTHONPATH=$PYTHONPATH:/tmp/te-site
  phase=numerics log=te-numerics
fi
case $phase in
  quant)
    python3 -m benchmarks.blockquant --out "$out/blockquant.json" 2>&1 | tee "$out/blockquant.log"
    exit "${PIPESTATUS[0]}" ;;
  bench)
    # shellcheck disable=SC2086  # GEMMS_ARGS: extra options, e.g. "--backends deepgemm,deepgemm-store --passes wgrad"
    python3 -m benchmarks.gemms --out "$out/gemms.json" ${GEMMS_ARGS:-} 2>&1 | tee "$out/gemms.log" ;;
  wide)
    # scripts/deepgemm-wgrad-wide.patch, applied here (scripts/stage_deepgemm.sh stages without it)
    grep -q wide_tile /tmp/DG/deep_gemm/jit_kernels/wgrad_gemm.py \
      || patch -s -d /tmp/DG -p1 < scripts/deepgemm-wgrad-wide.patch || exit 1
    python3 - 2>&1 <<'PY' | tee "$out/wide.log"
# scripts/deepgemm-wgrad-wide.patch: BLOCK_M 256 for the weight gradient's BF16 output. Each output
# element is still promoted k block by k block in the same order: the same bits expected, checked here.
import sys
import torch
import deep_gemm
from harness.train.precision.blockquant import per_group

torch.manual_seed(0)
bad = 0
for m, n, k in [(4608, 3584, 16384), (3584, 3584, 16384), (37888, 3584, 16384), (3584, 18944, 16384)]:
    qa, sa = per_group(torch.randn(m, k, device="cuda"))
    qb, sb = per_group(torch.randn(n, k, device="cuda"))
    plain = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt((qa, sa), (qb, sb), plain, accumulate=False)
    wide = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt((qa, sa), (qb, sb), wide, accumulate=False, wide_tile=True)
    same = torch.equal(plain, wide)
    bad += not same
    print(f"m={m:6d} n={n:6d} k={k:6d} wide tile {'identical' if same else 'DIFFERS'} "
          f"(max abs diff {(plain.float() - wide.float()).abs().max().item():.3g})", flush=True)
print("all identical" if not bad else f"{bad} case(s) differ")
sys.exit(1 if bad else 0)
PY
    rc=${PIPESTATUS[0]}
    python3 -m benchmarks.gemms --out "$out/gemms.json" --backends deepgemm-store,deepgemm-wide --passes wgrad \
      2>&1 | tee "$out/gemms.log"
    exit "$rc" ;;
  keep-faster)
    if grep -q "^all identical" "$out/wide.log" 2>/dev/null && python3 -c "import json, sys
layer = json.load(open('$out/gemms.json'))['layer']
sys.exit(0 if layer['deepgemm-wide']['ms'] < layer['deepgemm-store']['ms'] else 1)"; then
      echo "wide tile kept (identical and faster)" | tee -a "$out/wide.log"
    elif grep -q wide_tile /tmp/DG/deep_gemm/jit_kernels/wgrad_gemm.py; then
      patch -R -s -d /tmp/DG -p1 < scripts/deepgemm-wgrad-wide.patch
      echo "wide tile taken out of /tmp/DG (not identical, not faster, or not measured)" | tee -a "$out/wide.log"
    fi ;;
  ncu)
    cat > /tmp/wgrad_once.py <<'PY'
# The gate/up weight gradient as deepgemm:blockwise calls it, three times (the first compiles it)
import torch
import deep_gemm
from harness.train.precision.blockquant import per_group
qa, sa = per_group(torch.randn(37888, 16384, device="cuda"))
qb, sb = per_group(torch.randn(3584, 16384, device="cuda"))
out = torch.empty(37888, 3584, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt((qa, sa), (qb, sb), out, accumulate=False)
torch.cuda.synchronize()
PY
    ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)
    # the last launch; the stall reasons are warp-cycles per issued instruction, by reason
    "${ncu:-ncu}" --clock-control none -k regex:fp8_wgrad_gemm_kernel --launch-skip 2 --launch-count 1 \
      --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section SchedulerStats --section WarpStateStats \
      --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
      python3 /tmp/wgrad_once.py > "$out/ncu.txt" 2>&1
    echo "rc=$?" >> "$out/ncu.txt"
    grep -E "Duration|Throughput|stalled|Issue|Eligible|Pipe|Bank" "$out/ncu.txt" | head -80 ;;
  numerics)
    python3 - 2>&1 <<'PY' | tee "$out/${log:-numerics}.log"
# The recipe's linear with DeepGEMM's kernels against the exact FP32 product and, where Transformer
# Engine is installed (../shared/gpu/stage.sh), against te:blockwise's te.Linear (Float8BlockScaling:
# the same 1x128 / 128x128 E4M3 blocks) on the same inputs, at the 7B shapes with 4,096 tokens (and
# 4,000, not a multiple of 128): outputs and both gradients. Bars (rel_diff, DeepGEMM's calc_diff):
# < 1e-3 against the exact product (DeepGEMM's own tests' bar), and < 2e-3 between the two recipes:
# TE rounds its scales to powers of 2 and DeepGEMM's quantisers use amax/448, so their roundings are
# independent and their errors add (each ~6.6e-4 from exact on CPU: ~1.3e-3 apart).
import torch
from harness.train.precision.deepgemm import DeepGEMMLinear
from harness.train.precision.registry import get_backend

try:
    import transformer_engine.pytorch as te
    te_blockwise = get_backend("te:blockwise")
    te_blockwise.check_available(torch.device("cuda"))
except Exception as exc:  # noqa: BLE001 - reported, then the exact comparison alone
    print(f"te:blockwise not compared: {exc}")
    te = None

def rel_diff(a, b):
    """DeepGEMM's calc_diff; infinite where either side holds a NaN or inf (a NaN compares below every bar)."""
    a, b = a.detach().double(), b.detach().double()
    d = float(1 - 2 * (a * b).sum() / ((a * a).sum() + (b * b).sum()))
    return d if d == d and d != float("inf") else float("inf")

def run(layer, x, g, autocast=None):
    """Output, input gradient and weight gradient of layer on x (BF16 input under autocast), upstream gradient g."""
    x = x.clone().requires_grad_()
    if autocast is None:
        y = layer(x)
    else:
        with autocast:
            y = layer(x.bfloat16())
    y.backward(g.to(y.dtype))
    return y, x.grad, layer.weight.grad

worst = {"exact": 0.0, "te": 0.0}
te_cases = 0  # the cases TE ran
torch.manual_seed(0)
for name, (out_f, in_f) in {"qkv": (4608, 3584), "o": (3584, 3584), "gate_up": (37888, 3584), "down": (3584, 18944)}.items():
    for tokens in (4096, 4000):
        bias = name == "qkv"
        exact = torch.nn.Linear(in_f, out_f, bias=bias, device="cuda")
        fp8 = DeepGEMMLinear.from_linear(torch.nn.Linear(in_f, out_f, bias=bias, device="cuda"))
        fp8.load_state_dict(exact.state_dict())
        x, g = torch.randn(tokens, in_f, device="cuda"), torch.randn(tokens, out_f, device="cuda")
        ref = run(exact, x, g)
        dg = run(fp8, x, g, torch.autocast("cuda", dtype=torch.bfloat16))
        line = f"{name:8s} tokens {tokens}: vs exact y/dx/dW " + " ".join(f"{rel_diff(a, b):.2e}" for a, b in zip(dg, ref))
        worst["exact"] = max([worst["exact"]] + [rel_diff(a, b) for a, b in zip(dg, ref)])
        if te is not None:
            try:  # a shape TE refuses is said, and the other comparisons go on
                tl = te.Linear(in_f, out_f, bias=bias, params_dtype=torch.bfloat16, device="cuda")
                with torch.no_grad():
                    tl.weight.copy_(exact.weight)
                    if bias:
                        tl.bias.copy_(exact.bias)
                tb = run(tl, x, g, te_blockwise.autocast(torch.device("cuda")))
            except Exception as exc:  # noqa: BLE001
                line += f"  te:blockwise refused: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            else:
                diffs = [rel_diff(a, b) for a, b in zip(dg, tb)]
                worst["te"], te_cases = max([worst["te"]] + diffs), te_cases + 1
                line += "  vs te:blockwise " + " ".join(f"{d:.2e}" for d in diffs)
                line += "  (te:blockwise vs exact " + " ".join(f"{rel_diff(a, b):.2e}" for a, b in zip(tb, ref)) + ")"
        print(line, flush=True)
# The SwiGLU MLP as deepgemm:blockwise's layers run it (gate/up as one GEMM, SiLU fused with the
# quantisations, deepgemm_ops.fp8_swiglu_mlp) against the exact FP32 MLP: two quantised GEMMs in a
# row on each path, so the bar is 4e-3 (the CPU test's).
from harness.train.precision.deepgemm_ops import fp8_swiglu_mlp
worst["mlp"] = 0.0
for tokens in (4096, 4000):
    x, g = torch.randn(tokens, 3584, device="cuda"), torch.randn(tokens, 3584, device="cuda")
    w1, w2 = torch.randn(37888, 3584, device="cuda") * 0.02, torch.randn(3584, 18944, device="cuda") * 0.02
    results = []
    for fp8 in (False, True):
        xa, w1a, w2a = (t.clone().requires_grad_() for t in (x, w1, w2))
        if fp8:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = fp8_swiglu_mlp(xa.bfloat16(), w1a, w2a)
        else:
            gate, up = (xa @ w1a.t()).chunk(2, dim=1)
            y = (torch.nn.functional.silu(gate) * up) @ w2a.t()
        y.backward(g.to(y.dtype))
        results.append((y, xa.grad, w1a.grad, w2a.grad))
    diffs = [rel_diff(a, b) for a, b in zip(results[1], results[0])]
    worst["mlp"] = max([worst["mlp"]] + diffs)
    print(f"mlp      tokens {tokens}: vs exact y/dx/dW1/dW2 " + " ".join(f"{d:.2e}" for d in diffs), flush=True)
    del results
# As training runs it: compiled by Inductor, against the same layer eager (bar 1e-4: only Inductor's
# own rounding of the scales differs). Under torch 2.11 a no-op `.to` on the output once made every
# gradient here zero while the forward matched (pytorch#180642; docs/PERFORMANCE.md).
worst["compiled"] = 0.0
for bias in (True, False):
    base = torch.nn.Linear(3584, 3584, bias=bias, device="cuda", dtype=torch.bfloat16)
    x, g = torch.randn(4096, 3584, device="cuda"), torch.randn(4096, 3584, device="cuda")
    results = []
    for compiled in (False, True):
        torch._dynamo.reset()
        layer = DeepGEMMLinear.from_linear(torch.nn.Linear(3584, 3584, bias=bias, device="cuda", dtype=torch.bfloat16))
        layer.load_state_dict(base.state_dict())
        results.append(run(torch.compile(layer) if compiled else layer, x, g, torch.autocast("cuda", dtype=torch.bfloat16)))
    diffs = [rel_diff(a, b) for a, b in zip(results[1], results[0])]
    worst["compiled"] = max([worst["compiled"]] + diffs)
    print(f"compiled vs eager, bias {bias}: y/dx/dW " + " ".join(f"{d:.2e}" for d in diffs)
          + f"  (|dW| {float(results[1][2].float().norm()):.4g})", flush=True)
x, g = torch.randn(4096, 3584, device="cuda"), torch.randn(4096, 3584, device="cuda")
w1 = torch.randn(37888, 3584, device="cuda", dtype=torch.bfloat16) * 0.02
w2 = torch.randn(3584, 18944, device="cuda", dtype=torch.bfloat16) * 0.02
results = []
for mlp in (fp8_swiglu_mlp, torch.compile(fp8_swiglu_mlp)):
    xa, w1a, w2a = (t.clone().requires_grad_() for t in (x, w1, w2))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = mlp(xa, w1a, w2a)
    y.backward(g.to(y.dtype))
    results.append((y, xa.grad, w1a.grad, w2a.grad))
diffs = [rel_diff(a, b) for a, b in zip(results[1], results[0])]
worst["compiled"] = max([worst["compiled"]] + diffs)
print("compiled vs eager, mlp: y/dx/dW1/dW2 " + " ".join(f"{d:.2e}" for d in diffs), flush=True)
bars = [("exact", 1e-3), ("mlp", 4e-3), ("compiled", 1e-4)] + ([("te", 2e-3)] if te_cases else [])
if te is not None:
    print(f"te:blockwise compared in {te_cases} of 8 cases")
for what, bar in bars:
    print(f"worst rel_diff vs {what}: {worst[what]:.2e}, {'within' if worst[what] < bar else 'ABOVE'} the {bar:.0e} bar")
PY
    ;;
  step)
    # Full 7B depth, 16k tokens per step, compiled BF16 baseline (docs/PERFORMANCE.md's setting).
    # A card under 100 GB (an H100) gets the 8-layer slice: the full depth does not fit. STEP_SET="key=value ..."
    # adds overrides after it (later ones win), e.g. "stages.cpt.steps=20".
    mem_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
    [ "${mem_mib:-0}" -lt 100000 ] && STEP_SET="name=gpu-7b-8layers model.num_layers=8 ${STEP_SET:-}"
    echo "card memory ${mem_mib} MiB, overrides: ${STEP_SET:-none}" > "$out/step-set.txt"
    python3 -c "import deep_gemm, torch; from harness.train.precision.deepgemm_ops import wgrad_options as o
print('BF16 weight gradients:', o(deep_gemm.wgrad_gemm_fp8_fp8_fp32_nt, torch.bfloat16))" >> "$out/step-set.txt" 2>&1
    step_set=()
    for kv in ${STEP_SET:-}; do step_set+=(--set "$kv"); done
    python3 -m harness.cli run suites/gpu-7b.toml --skip-eval --runs-dir /tmp/runs --quiet \
      --set arms.deepgemm=deepgemm:blockwise --set telemetry.profile_steps=3 "${step_set[@]}" \
      --arm bf16 --arm deepgemm --report-dir /tmp/report/deepgemm \
      > "$out/step.log" 2>&1
    echo "rc=$?" >> "$out/step.log"
    tail -30 "$out/step.log"
    tar czf "$out/step.tgz" --exclude=checkpoints --exclude=.cache -C /tmp runs report 2>/dev/null ;;
  warm)
    # The loss-parity setting of te:blockwise's 0.132% / 0.175% (docs/PERFORMANCE.md): 300 BF16 steps of
    # suites/gpu-1.5b.toml, then each arm 300 steps from those weights (scripts/gpu_perf.sh warm).
    PERF_SET="arms.deepgemm=deepgemm:blockwise ${PERF_SET:-}" bash scripts/gpu_perf.sh warm ${WARM_ARMS:-bf16 te-blockwise deepgemm} ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
ls -la "$out"
