#!/usr/bin/env bash
# Evaluation through real vLLM on one H100/H200, with the harness's own code paths (docs/EVAL.md
# "vLLM on the GPU machine"). vLLM, its serving dependencies and EvalScope are staged by
# scripts/stage_vllm.sh (parts carried one per call; STAGE_PART=vK copies .stage-vllm/vK first):
#   STAGE_PART=v3 bash scripts/gpu_eval.sh install   # after v1, v2: reassemble and install into /tmp/site
#   bash scripts/gpu_eval.sh eval [CHECKPOINT]       # the four paper benchmarks (tests/fixtures/eval/hub, their
#                                                    # hub schemas) at InfiR2's k and max_tokens, --limit 1; the
#                                                    # first run is stopped with SIGTERM once KILL_AT (16) samples
#                                                    # are written, the second resumes it (eval-kill, then
#                                                    # eval-resume: the same in two calls)
#   bash scripts/gpu_eval.sh throughput [CHECKPOINT] # AIME24 (3 problems x 64 samples x 4,096 tokens) through harness eval
#                                                    # and through vLLM's offline LLM.chat on the same requests
#   bash scripts/gpu_eval.sh seeds [CHECKPOINT]      # the same seeds twice: the same texts?
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
phase=${1:?phase: install, eval, throughput or seeds}
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
  eval|eval-kill|eval-resume)
    level=$(sandbox_ok)
    echo "sandbox: $level" >> "$logs/eval.log"
    case $level in bwrap*) ;; *) weak=(--allow-weak-sandbox) ;; esac
    cmd=(python3 -m harness.cli eval "$ckpt" --out /tmp/eval/hub --backend vllm --data-dir "$hub" --limit 1
      --bench aime24,aime25,gpqa_diamond,livecodebench_v5 "${weak[@]}")
    # The first run is stopped with SIGTERM once KILL_AT samples are written (16: GPQA-Diamond's and
    # LiveCodeBench's, whose max_tokens are the smaller); the second must generate only the rest.
    # eval-kill and eval-resume run one each, in two calls, when both would not fit in one.
    if [ "$phase" != eval-resume ]; then
      start=$(date +%s)
      timeout -s TERM "${FIRST_TIMEOUT:-330}" "${cmd[@]}" >> "$logs/eval.log" 2>&1 &
      pid=$!
      while kill -0 "$pid" 2>/dev/null; do
        n=$(cat /tmp/eval/hub/*/generations.jsonl 2>/dev/null | wc -l)
        if [ "$n" -ge "${KILL_AT:-16}" ]; then kill -TERM "$pid"; break; fi  # timeout passes it on
        sleep 1
      done
      wait "$pid"
      echo "first run rc=$? after $(( $(date +%s) - start )) s" >> "$logs/eval.log"
      wc -l /tmp/eval/hub/*/generations.jsonl >> "$logs/eval.log" 2>&1
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv >> "$logs/eval.log" 2>&1  # nothing left behind?
    fi
    [ "$phase" = eval-kill ] && { save; exit 0; }
    start=$(date +%s)
    timeout -s TERM "${SECOND_TIMEOUT:-300}" "${cmd[@]}" >> "$logs/eval.log" 2>&1
    echo "second run rc=$? after $(( $(date +%s) - start )) s" >> "$logs/eval.log"
    ;;
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
  seeds)
    for n in 1 2; do
      python3 -m harness.cli eval "$ckpt" --out "/tmp/eval/seeds$n" --backend vllm --data-dir "$hub" --limit 2 \
        --bench aime24 --samples 4 --max-tokens 512 > "$logs/seeds$n.log" 2>&1
      echo "rc=$?" >> "$logs/seeds$n.log"
    done
    python3 - > "$logs/seeds.txt" 2>&1 <<'PY'
import json
runs = [{(r["problem_id"], r["sample_index"]): r for r in map(json.loads, open(f"/tmp/eval/seeds{n}/aime24/generations.jsonl"))} for n in (1, 2)]
same = sum(runs[0][k]["output"] == runs[1][k]["output"] for k in runs[0])
seeds = {r["seed"] for r in runs[0].values()}
print(f"{same} of {len(runs[0])} samples identical across the two runs; {len(seeds)} distinct seeds")
within = {}
for (pid, i), r in runs[0].items():
    within.setdefault(pid, set()).add(r["output"])
print("distinct texts per problem:", {pid: len(texts) for pid, texts in within.items()})
PY
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
save
ls -la "$out"
