#!/usr/bin/env bash
# The GPU verification of the trainer and telemetry, in one command on an H100/H200 machine
# whose Transformer Engine / torchao wheels are staged in /tmp/stage (../shared/gpu/README.md):
#   bash scripts/gpu_check.sh [OUT_DIR]
# Writes into OUT_DIR: gpu.txt, selfcheck.txt, run.log, overhead.json, results.tgz (run dirs
# without checkpoints, and the report).
set -uo pipefail
out=${1:-${OUT:-/tmp/gpu-out}}
mkdir -p "$out"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache
# Transformer Engine must load the cuDNN that torch ships (pip nvidia-cudnn), not the system's
# older one: otherwise "libcudnn_cnn.so.9: undefined symbol ..." (seen on the H100 image).
cudnn=$(python3 -c "import nvidia.cudnn, os; print(os.path.join(list(nvidia.cudnn.__path__)[0], 'lib'))" 2>/dev/null) \
  && export LD_LIBRARY_PATH=$cudnn:${LD_LIBRARY_PATH:-}
# TE's PyTorch extension only: TE then skips its Jax probe, whose warning every run printed (the image has Jax).
export NVTE_FRAMEWORK=pytorch
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
python3 -c "import torch, transformer_engine as te, torchao; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'te', te.__version__, 'torchao', torchao.__version__)" >> "$out/gpu.txt" 2>&1
python3 -m harness.train.precision.selfcheck --device cuda > "$out/selfcheck.txt" 2>&1
echo "selfcheck rc=$?" >> "$out/selfcheck.txt"
python3 -m harness.cli run suites/gpu-1.5b.toml --skip-eval --runs-dir /tmp/runs --report-dir /tmp/report \
  --quiet ${GPU_CHECK_ARGS:-} > "$out/run.log" 2>&1
echo "run rc=$?" >> "$out/run.log"
if [ -z "${SKIP_OVERHEAD:-}" ]; then
  python3 scripts/telemetry_overhead.py suites/gpu-1.5b.toml --arm bf16 --out "$out/overhead.json" > "$out/overhead.log" 2>&1
  echo "overhead rc=$?" >> "$out/overhead.log"
fi
tar czf "$out/results.tgz" --exclude=checkpoints --exclude=.cache -C /tmp runs report
ls -la "$out"
