"""Registers and spills of blockquant's Triton kernels on Hopper, read on a machine without a GPU.

Compiles each kernel for sm_90a in every autotuner configuration (Triton's own compiler, to PTX)
and runs ptxas -v on it, so a kernel change can be judged for spills before it costs device time
(docs/PERFORMANCE.md, "DeepGEMM, fourth session"). Its speed is still the GPU's to say
(`scripts/gpu_deepgemm.sh quant`).

    python -m venv /tmp/tv && /tmp/tv/bin/pip install triton==3.6.0 torch==2.13.0
    /tmp/tv/bin/python scripts/triton_sm90.py            # ptxas from Triton's wheel
    PTXAS=/usr/local/cuda/bin/ptxas /tmp/tv/bin/python scripts/triton_sm90.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from harness.train.precision import blockquant_kernels as kernels  # noqa: E402

OUTPUTS = {"q_ptr": "*fp8e4nv", "s_ptr": "*fp32", "qt_ptr": "*fp8e4nv", "st_ptr": "*fp32"}
SIZES = {name: "i32" for name in ("m", "k", "f", "m128", "row_stride")}
CONSTANTS = {"BLOCK": 128, "INV_FP8_MAX": 1 / 448}
# kernel -> (its inputs' types, the constexprs the caller passes besides the configuration's)
KERNELS = {
    "cast_transpose": ({"x_ptr": "*bf16"}, {"WEIGHT": False}),
    "swiglu_cast_transpose": ({"h_ptr": "*bf16"}, {}),
    "swiglu_backward_cast_transpose": ({"h_ptr": "*bf16", "da_ptr": "*bf16"}, {}),
}


def ptxas_report(ptx: str) -> str:
    """ptxas -v's registers and spills for one kernel's PTX."""
    ptxas = os.environ.get("PTXAS") or str(Path(triton.__file__).parent / "backends/nvidia/bin/ptxas")
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        done = subprocess.run([ptxas, "-v", "-arch=sm_90a", f.name, "-o", os.devnull], capture_output=True, text=True)
    registers = re.search(r"Used (\d+) registers", done.stderr)
    spills = re.search(r"(\d+) bytes spill stores", done.stderr)
    return f"{registers.group(1) if registers else '?':>3} registers, {spills.group(1) if spills else '?':>5} B spill stores"


def main() -> int:
    for name, (inputs, fixed) in KERNELS.items():
        tuner = getattr(kernels, name)
        for config in tuner.configs:
            constexprs = {**CONSTANTS, **fixed, **config.kwargs}
            signature = {}
            for arg in tuner.fn.arg_names:
                signature[arg] = "constexpr" if arg in constexprs else {**inputs, **OUTPUTS, **SIZES}[arg]
            options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
            if getattr(config, "maxnreg", None):
                options["maxnreg"] = config.maxnreg
            compiled = triton.compile(
                ASTSource(fn=tuner.fn, signature=signature, constexprs=constexprs),
                target=GPUTarget("cuda", 90, 32),
                options=options,
            )
            print(f"{name:31} {str(config.kwargs):28} warps {config.num_warps:2}  {ptxas_report(compiled.asm['ptx'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
