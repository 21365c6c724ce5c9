#!/usr/bin/env bash
# The chain scripts/gpu_session.sh starts in the background: one step after another, each logged.
set -uo pipefail
logs=/tmp/gpu-logs
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache NVTE_FRAMEWORK=pytorch
export HARNESS_VLLM_COMMAND=${HARNESS_VLLM_COMMAND:-"python3 -m vllm.entrypoints.cli.main serve"}
export VLLM_USE_FLASHINFER_SAMPLER=0 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
HARNESS_GIT_SHA=$(cat GIT_SHA 2>/dev/null) && export HARNESS_GIT_SHA
step() { echo "$(date +%T) $*" >> "$logs/session.log"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -c "import torchao; print('torchao', torchao.__version__)"; } > "$logs/env.txt" 2>&1
suite=${VERDICT_SUITE:-suites/verdict-1.5b.toml}
ckpt=${CKPT:-/tmp/verdict-runs/verdict-1.5b/sft-bf16-s0/checkpoints/final}  # the harness-trained bf16 SFT model
wait_vllm() {  # vLLM's last part arrives while the chain trains; give up after 15 minutes
  local waited=0
  while [ ! -e /tmp/site/.vllm ] && [ "$waited" -lt 900 ]; do sleep 2; waited=$((waited + 2)); done
  [ -e /tmp/site/.vllm ]
}
# Phases: verdict (time_to_verdict.sh on the suite, whose bf16 SFT run is the checkpoint of the rest);
# ckpt (only that checkpoint, CKPT_STEPS CPT and SFT steps of the suite's bf16 arm); throughput, resume,
# infir2 (gpu_eval.sh); dg-quant, dg-bench, dg-numerics, dg-step, dg-warm (gpu_deepgemm.sh: DeepGEMM,
# issue 25; dg-warm takes WARM_ARMS, e.g. "bf16 deepgemm"); dg-te-numerics waits up to 10 minutes for
# Transformer Engine's six parts (gpu_session.sh copies them to /tmp/stage), installs them into
# /tmp/te-site (not /tmp/site, which running phases import from) and runs numerics against te:blockwise.
# A dg-quant whose cast-transpose kernel is not byte-exact (exit 1) ends the chain: every later dg-*
# phase runs it.
for phase in ${PHASES:-verdict throughput resume infir2}; do
  step "$phase begins"
  case $phase in
    verdict) OUT=/tmp/verdict-out RUNS_DIR=/tmp/verdict-runs BEFORE_EVAL='while [ ! -e /tmp/site/.vllm ]; do sleep 2; done' \
      bash scripts/time_to_verdict.sh "$suite" > "$logs/verdict.txt" 2>&1 ;;
    ckpt)
      for run_id in cpt-bf16-s0 sft-bf16-s0; do
        python3 -m harness.cli train "$suite" --run-id "$run_id" --runs-dir /tmp/verdict-runs --quiet \
          --set "stages.cpt.steps=${CKPT_STEPS:-10}" --set "stages.sft.steps=${CKPT_STEPS:-10}" || break
      done > "$logs/ckpt.log" 2>&1 ;;
    dg-te-numerics) OUT=/tmp/dg-out bash scripts/gpu_deepgemm.sh te-numerics > "$logs/$phase.out" 2>&1 ;;
    dg-*) OUT=/tmp/dg-out bash scripts/gpu_deepgemm.sh "${phase#dg-}" > "$logs/$phase.out" 2>&1 ;;
    *) wait_vllm && OUT=/tmp/gpu-out bash scripts/gpu_eval.sh "$phase" "$ckpt" > "$logs/$phase.out" 2>&1 ;;
  esac
  rc=$?
  step "$phase rc=$rc"
  [ "$phase" = dg-quant ] && [ "$rc" -eq 1 ] && break
done
touch "$logs/chain.done"
