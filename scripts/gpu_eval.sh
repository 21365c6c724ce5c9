#!/usr/bin/env bash
# Evaluation through real vLLM on one H100/H200, with the harness's own code paths (docs/EVAL.md
# "vLLM on the GPU machine"). vLLM, its serving dependencies and EvalScope are staged by
# scripts/stage_vllm.sh (parts carried one per call; STAGE_PART=vK copies .stage-vllm/vK first);
# scripts/gpu_session.sh chains these phases after the time-to-verdict pipeline in one device session.
#   STAGE_PART=v3 bash scripts/gpu_eval.sh install   # after v1, v2: reassemble and install into /tmp/site
#   bash scripts/gpu_eval.sh throughput [CHECKPOINT] # AIME24 (3 problems x 64 samples x 4,096 tokens) through harness eval
#                                                    # and through vLLM's offline LLM.chat on the same requests
#   bash scripts/gpu_eval.sh resume [CHECKPOINT]     # AIME24 (3 x 16 samples x 1,024 tokens, 8 in flight): stopped with
#                                                    # SIGTERM once KILL_AT (8) samples are written, resumed, then run
#                                                    # again uninterrupted: the same seeds, the same texts?
#   bash scripts/gpu_eval.sh infir2 [CHECKPOINT]     # the four paper benchmarks (tests/fixtures/eval/hub, their hub
#                                                    # schemas) at InfiR2's k and max_tokens, --limit 1 (80 samples)
# CHECKPOINT defaults to the packed bf16 SFT run of scripts/gpu_sft.sh (a harness-trained 1.5B).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}  # what comes back: one <phase>.tgz (logs, run folders without checkpoints, reports)
logs=/tmp/gpu-logs        # kept across calls while the machine stays warm
mkdir -p "$out" "$logs"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache NVTE_FRAMEWORK=pytorch
# vLLM lives in /tmp/site, not on PATH: the harness starts it through this command (and its PYTHONPATH).
export HARNESS_VLLM_COMMAND=${HARNESS_VLLM_COMMAND:-"python3 -m vllm.entrypoints.cli.main serve"}
export VLLM_USE_FLASHINFER_SAMPLER=0  # FlashInfer is not staged: vLLM's PyTorch top-p/top-k sampler
if [ -n "${STAGE_PART:-}" ] && [ -d ".stage-vllm/$STAGE_PART" ]; then
  mkdir -p /tmp/stage-vllm && cp -r ".stage-vllm/$STAGE_PART"/* /tmp/stage-vllm/
fi
[ -x /tmp/bwrap/usr/bin/bwrap ] && export HARNESS_BWRAP=/tmp/bwrap/usr/bin/bwrap
phase=${1:?phase: install, throughput, resume or infir2}
ckpt=${2:-/tmp/runs/gpu-sft-1.5b/sft-bf16-s0/checkpoints/final}
hub=tests/fixtures/eval/hub
weak=()
save() {  # logs and the eval folders (samples.parquet, summary.json, generations, server logs)
  tar czf "$out/eval-$phase.tgz" -C /tmp gpu-logs $(cd /tmp && ls -d eval 2>/dev/null)
}
sandbox_ok() { python3 -c "from harness.eval.sandbox import containment; print(containment().level)" 2>&1; }
case $phase in
  install)
    bash scripts/stage_vllm.sh --install > "$logs/install.log" 2>&1
    echo "install rc=$?" >> "$logs/install.log"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$logs/install.log" 2>&1
    [ -x /tmp/bwrap/usr/bin/bwrap ] && export HARNESS_BWRAP=/tmp/bwrap/usr/bin/bwrap  # just unpacked
    echo "sandbox: $(sandbox_ok)" >> "$logs/install.log" ;;
  throughput)
    # 192 requests (3 problems x 64 samples) at 4,096 tokens: enough to fill the engine in a few minutes.
    python3 -m harness.cli eval "$ckpt" --out /tmp/eval/tput --backend vllm --data-dir "$hub" --limit 3 \
      --samples 64 --max-tokens 4096 --bench aime24 --quiet > "$logs/throughput.log" 2>&1
    echo "harness rc=$?" >> "$logs/throughput.log"
    cat /tmp/eval/tput/aime24/sessions.jsonl >> "$logs/throughput.log"
    python3 scripts/vllm_throughput.py "$ckpt" --bench aime24 --data-dir "$hub" --limit 3 --samples 64 --max-tokens 4096 \
      --out "$logs/vllm-offline.json" >> "$logs/throughput.log" 2>&1
    echo "offline rc=$?" >> "$logs/throughput.log"
    ;;
  resume)
    # 48 samples, 8 in flight: they finish in waves, so a stop after the first wave leaves 40 to do.
    cmd=(timeout -s TERM "${RESUME_TIMEOUT:-240}" python3 -m harness.cli eval "$ckpt" --backend vllm --data-dir "$hub"
      --bench aime24 --limit 3 --samples 16 --max-tokens 1024 --max-concurrency 8)
    start=$(date +%s)
    "${cmd[@]}" --out /tmp/eval/resume > "$logs/resume.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      n=$(cat /tmp/eval/resume/aime24/generations.jsonl 2>/dev/null | wc -l)
      if [ "$n" -ge "${KILL_AT:-8}" ]; then kill -TERM "$pid"; break; fi  # timeout passes it on
      sleep 0.5
    done
    wait "$pid"
    echo "first run rc=$? after $(( $(date +%s) - start )) s; samples kept: $(wc -l < /tmp/eval/resume/aime24/generations.jsonl)" >> "$logs/resume.log"
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv >> "$logs/resume.log" 2>&1  # nothing left behind?
    "${cmd[@]}" --out /tmp/eval/resume >> "$logs/resume.log" 2>&1
    echo "resumed run rc=$?" >> "$logs/resume.log"
    "${cmd[@]}" --out /tmp/eval/whole > "$logs/whole.log" 2>&1
    echo "uninterrupted run rc=$?" >> "$logs/whole.log"
    python3 - > "$logs/seeds.txt" 2>&1 <<'PY'
import json
runs = [{(r["problem_id"], r["sample_index"]): r for r in map(json.loads, open(f"/tmp/eval/{name}/aime24/generations.jsonl"))}
        for name in ("resume", "whole")]
same = sum(runs[0][k]["output"] == runs[1][k]["output"] for k in runs[0])
seeds = {r["seed"] for r in runs[0].values()}
print(f"{same} of {len(runs[0])} samples identical between the stopped-and-resumed run and the uninterrupted one; "
      f"{len(seeds)} distinct seeds; seeds equal: {all(runs[0][k]['seed'] == runs[1][k]['seed'] for k in runs[0])}")
for k in sorted(runs[0]):
    a, b = runs[0][k]["output"], runs[1][k]["output"]
    common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    print(k, "identical" if a == b else f"differ after {common} of {len(a)}/{len(b)} characters")
PY
    sessions=$(cat /tmp/eval/resume/aime24/sessions.jsonl)
    echo "sessions of the resumed run: $sessions" >> "$logs/resume.log"
    ;;
  infir2)
    level=$(sandbox_ok)
    echo "sandbox: $level" >> "$logs/infir2.log"
    case $level in bwrap*) ;; *) weak=(--allow-weak-sandbox) ;; esac
    start=$(date +%s)
    timeout -s TERM "${INFIR2_TIMEOUT:-540}" python3 -m harness.cli eval "$ckpt" --out /tmp/eval/hub --backend vllm \
      --data-dir "$hub" --limit 1 --bench aime24,aime25,gpqa_diamond,livecodebench_v5 "${weak[@]}" >> "$logs/infir2.log" 2>&1
    echo "rc=$? after $(( $(date +%s) - start )) s" >> "$logs/infir2.log"
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
save
ls -la "$out"
