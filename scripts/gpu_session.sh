#!/usr/bin/env bash
# One device session of evaluation work on one H100/H200, chained so that the GPU never waits for
# staging: the time-to-verdict pipeline (suites/verdict-1.5b.toml: CPT -> SFT -> evaluation through
# vLLM -> compare -> report -> gate) trains while vLLM's parts still travel, then gpu_eval.sh's
# throughput, resume and infir2 phases run on its bf16 SFT checkpoint (harness-trained). The chain
# runs in its own process session, so it outlives the call that starts it (device README); every
# call brings back what is done so far.
#   STAGE_PART=v1 bash scripts/gpu_session.sh            # call 1: part v1, its wheels installed, the chain started
#   STAGE_PART=v2 bash scripts/gpu_session.sh            # call 2: part v2
#   STAGE_PART=v3 WAIT_S=500 bash scripts/gpu_session.sh # call 3: the last part; vLLM installed; waits up to WAIT_S
#   WAIT_S=570 bash scripts/gpu_session.sh               # later calls: wait for the chain, bring back what is done
# Results: $OUT/session.tgz (logs, run folders without checkpoints, eval folders, the report);
# PHASES ("verdict throughput resume infir2") picks the chain's steps (scripts/gpu_session_chain.sh lists
# them); a call that carries .stage-dg (scripts/stage_deepgemm.sh) installs DeepGEMM for the dg-* ones,
# and that part alone starts a chain of dg-* phases:
#   PHASES="dg-quant dg-numerics dg-step" WAIT_S=560 bash scripts/gpu_session.sh   # carry [".stage-dg"]
# Transformer Engine's six parts (../shared/gpu/stage.sh: .stage/c1 ... .stage/c6) may follow, one per
# call while the chain runs (`bash scripts/gpu_session.sh` carrying [".stage/cN"]); the chain's
# dg-te-numerics phase installs them into /tmp/te-site and compares the recipe with te:blockwise.
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
logs=/tmp/gpu-logs
mkdir -p "$out" "$logs" /tmp/stage-vllm
if [ -n "${STAGE_PART:-}" ] && [ -d ".stage-vllm/$STAGE_PART" ]; then
  cp -r ".stage-vllm/$STAGE_PART"/* /tmp/stage-vllm/
  echo "$(date +%T) part $STAGE_PART copied" >> "$logs/session.log"
fi
if [ -d /tmp/stage-vllm/wheels ] && [ ! -e /tmp/site/.wheels ]; then
  bash scripts/stage_vllm.sh --install wheels > "$logs/wheels.log" 2>&1 && touch /tmp/site/.wheels
  echo "$(date +%T) wheels rc=$?" >> "$logs/session.log"
fi
if [ ! -e /tmp/site/.vllm ] && (cd /tmp/stage-vllm && ls vllm.part* >/dev/null 2>&1 \
    && [ "$(cat vllm.part* | sha256sum | cut -d' ' -f1)" = "$(cut -d' ' -f1 checksums.sha256)" ]); then
  bash scripts/stage_vllm.sh --install vllm > "$logs/vllm-install.log" 2>&1 && touch /tmp/site/.vllm
  echo "$(date +%T) vllm install rc=$?" >> "$logs/session.log"
fi
for part in .stage/c*; do  # Transformer Engine's parts, copied as they come (installed by dg-te-numerics)
  [ -d "$part" ] && mkdir -p /tmp/stage && cp "$part"/* /tmp/stage/ && echo "$(date +%T) TE part ${part##*/} copied" >> "$logs/session.log"
done
if [ -d .stage-dg/DeepGEMM ] && [ ! -d /tmp/DG ]; then  # DeepGEMM for the chain's dg-* phases (issue 25)
  bash scripts/stage_deepgemm.sh --install >> "$logs/session.log" 2>&1
fi
# The chain starts once a training run's wheels are in: vLLM's part v1 or .stage-dg's own.
if [ ! -e "$logs/chain.started" ] && { [ -e /tmp/site/.wheels ] || [ -e /tmp/site/.train-wheels ]; }; then
  touch "$logs/chain.started"
  # From a copy of the repository: the next call's transfer rewrites the working tree under it.
  rm -rf /tmp/repo && mkdir -p /tmp/repo && tar cf - --exclude=./.stage-vllm --exclude=./.stage --exclude=./.git . | tar xf - -C /tmp/repo
  (cd /tmp/repo && setsid nohup bash scripts/gpu_session_chain.sh > "$logs/chain.log" 2>&1 < /dev/null &)
  echo "$(date +%T) chain started" >> "$logs/session.log"
fi
waited=0
while [ "$waited" -lt "${WAIT_S:-0}" ] && [ ! -e "$logs/chain.done" ]; do sleep 5; waited=$((waited + 5)); done
tail -n 40 "$logs/session.log" "$logs/chain.log" 2>/dev/null
tar czf "$out/session.tgz" --exclude=checkpoints --exclude=.cache -C /tmp gpu-logs \
  $(cd /tmp && ls -d eval verdict-out verdict-runs dg-out runs report 2>/dev/null)
ls -la "$out"
