#!/usr/bin/env bash
# A newer cuBLAS for the offline GPU machine, whose image has torch's nvidia-cublas 13.1.0.3
# (docs/PERFORMANCE.md: te:blockwise's block-scaled GEMMs are cuBLAS kernels).
#   bash scripts/stage_cublas.sh [VERSION]        # here, with the package registry; default 13.10.0.20
# writes the ignored folders .stage-cublas/b1 ... bN (each part under 60 MB, so a part plus the
# working tree fits one device call's 64 MiB). On the GPU machine, carry one per call:
#   mkdir -p /tmp/stage-cublas && cp .stage-cublas/bK/* /tmp/stage-cublas/
# and after the last: bash scripts/stage_cublas.sh --unpack   # -> /tmp/cublas/libcublas{,Lt}.so.13
# Then `CUBLAS_DIR=/tmp/cublas bash scripts/gpu_perf.sh ...` preloads it in every process it starts;
# each manifest's versions.cublas says which cuBLAS a run used.
set -euo pipefail
if [ "${1:-}" = --unpack ]; then
  cd /tmp/stage-cublas
  cat libs.part* > libs.tar.xz
  sha256sum -c libs.sha256
  mkdir -p /tmp/cublas
  python3 -c "import tarfile; tarfile.open('libs.tar.xz').extractall('/tmp/cublas', filter='data')"
  cat version
  ls -la /tmp/cublas
  exit 0
fi
version=${1:-13.10.0.20}
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qxF '/.stage-cublas/' .git/info/exclude 2>/dev/null || echo '/.stage-cublas/' >> .git/info/exclude
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
  --platform manylinux1_x86_64 --python-version 3.12 -d "$tmp" "nvidia-cublas==$version"
python3 -m zipfile -e "$tmp"/nvidia_cublas-*.whl "$tmp/wheel"
tar cf - -C "$tmp/wheel/nvidia/cu13/lib" libcublasLt.so.13 libcublas.so.13 | xz -T0 -6 > "$tmp/libs.tar.xz"
rm -rf .stage-cublas && mkdir -p .stage-cublas
split -b 60000000 -d -a 1 "$tmp/libs.tar.xz" "$tmp/libs.part"
i=0
for part in "$tmp"/libs.part*; do
  i=$((i + 1)); mkdir -p ".stage-cublas/b$i"; mv "$part" ".stage-cublas/b$i/"
done
(cd "$tmp" && sha256sum libs.tar.xz > "$root/.stage-cublas/b1/libs.sha256")
echo "nvidia-cublas $version" > .stage-cublas/b1/version
du -sh .stage-cublas/b*
