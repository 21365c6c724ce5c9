#!/usr/bin/env bash
# Time to verdict: a suite's whole pipeline, one command per step, each timed: every training run
# (stage by stage, each arm), the evaluation of every run whose stage evaluates, compare, report, gate.
#
#   bash scripts/time_to_verdict.sh                        # suites/verdict-1.5b.toml on one GPU
#   VERDICT_SET="arms.fp8=te:blockwise" bash scripts/time_to_verdict.sh
#   bash scripts/time_to_verdict.sh suites/smoke.toml      # the same stages on a CPU (a check of this script)
#
# On the GPU machine vLLM comes from scripts/stage_vllm.sh (`scripts/gpu_eval.sh install`); this
# script then uses it as gpu_eval.sh does. BEFORE_EVAL="command" runs between training and evaluation,
# untimed (the total leaves it out). VERDICT_SET="key=value ..." adds --set overrides to every
# command that reads the suite. Prints one line per stage and writes $OUT/time-to-verdict.json
# (OUT defaults to /tmp/verdict-out); runs go to RUNS_DIR (default /tmp/verdict-runs).
set -uo pipefail
suite=${1:-suites/verdict-1.5b.toml}
runs=${RUNS_DIR:-/tmp/verdict-runs}
out=${OUT:-/tmp/verdict-out}
mkdir -p "$out" "$runs"
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ -d /tmp/site/vllm ]; then  # the staged vLLM, as scripts/gpu_eval.sh runs it
  export HARNESS_VLLM_COMMAND=${HARNESS_VLLM_COMMAND:-"python3 -m vllm.entrypoints.cli.main serve"}
  export VLLM_USE_FLASHINFER_SAMPLER=0
fi
[ -x /tmp/bwrap/usr/bin/bwrap ] && export HARNESS_BWRAP=/tmp/bwrap/usr/bin/bwrap
sets=()
for kv in ${VERDICT_SET:-}; do sets+=(--set "$kv"); done
py=${PYTHON:-python3}
harness=("$py" -m harness.cli)

# The suite's name, its runs in training order, and the runs that get evaluated.
mapfile -t layout < <("$py" - "$suite" ${VERDICT_SET:-} <<'PY'
import sys
from harness.suite import load_suite, plan
suite = load_suite(sys.argv[1], sys.argv[2:])
specs = plan(suite)
print(suite.name)
print(" ".join(s.run_id for s in specs))
print(" ".join(s.run_id for s in specs if s.stage.evaluate))
PY
)
[ "${#layout[@]}" -eq 3 ] || { echo "time_to_verdict: cannot read $suite" >&2; exit 2; }
name=${layout[0]}
read -r -a trained <<< "${layout[1]}"
read -r -a evaluated <<< "${layout[2]}"
suite_dir=$runs/$name
log=$out/time-to-verdict.log
: > "$log"
results=()

timed() {  # timed LABEL COMMAND...: run it, log its output, record its wall time and exit code
  local label=$1 start rc seconds
  shift
  start=$EPOCHREALTIME
  "$@" >> "$log" 2>&1
  rc=$?
  seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  printf '%-28s %8.1f s  rc=%d\n' "$label" "$seconds" "$rc"
  results+=("{\"stage\": \"$label\", \"wall_s\": $seconds, \"rc\": $rc}")
}

begin=$EPOCHREALTIME
for run_id in "${trained[@]}"; do
  timed "train $run_id" "${harness[@]}" train "$suite" --run-id "$run_id" --runs-dir "$runs" --quiet "${sets[@]}"
done
if [ -n "${BEFORE_EVAL:-}" ]; then  # e.g. wait for vLLM's install to finish (scripts/gpu_session.sh); not timed
  waited=$EPOCHREALTIME
  bash -c "$BEFORE_EVAL" >> "$log" 2>&1
  waited=$(awk -v a="$waited" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  printf '%-28s %8.1f s  (not counted)\n' "waiting before evaluation" "$waited"
fi
for run_id in "${evaluated[@]}"; do
  timed "eval $run_id" "${harness[@]}" eval "$suite_dir/$run_id" --quiet
done
timed compare "${harness[@]}" compare "$suite_dir" --suite "$suite"  # the gates; VERDICT_SET is not applied here
timed report "${harness[@]}" report "$suite_dir" --out "$out/report"
timed gate "${harness[@]}" gate "$suite_dir"
total=$(awk -v a="$begin" -v b="$EPOCHREALTIME" -v w="${waited:-0}" 'BEGIN { printf "%.1f", b - a - w }')
printf '%-28s %8.1f s\n' total "$total"
joined=$(IFS=,; echo "${results[*]}")
echo "{\"suite\": \"$name\", \"total_s\": $total, \"not_counted_s\": ${waited:-0}, \"stages\": [$joined]}" \
  > "$out/time-to-verdict.json"
