"""What one decoder layer keeps in memory between forward and backward, per recipe.

    python -m benchmarks.memory --out memory.json                  # every shape, recipe, eager + compiled
    python -m benchmarks.memory --recipes bf16 te:blockwise --compile 0

A training step's peak is weights + gradients + optimiser state (the same bytes in every arm)
plus what the forward keeps for the backward. This measures the second part, the only one an
FP8 recipe can shrink, for one decoder layer built exactly as the benchmarks build it
(benchmarks/cases.py: FP32 master weights, backend.convert(), BF16 autocast + the recipe's
context, per-module torch.compile when compiled):

- held_bytes: torch.cuda.memory_allocated() after the forward minus before it, less the layer's
  output (measured, compiled or not; includes autocast's / the recipe's weight copies).
- saved: the tensors autograd saved, by dtype (eager only: a compiled layer saves inside its
  own graph). Quantized data shows up as uint8 (Transformer Engine) or float8 (torchao);
  parameters and the layer's input are left out (they exist anyway).

A recipe its backend refuses on this machine is listed with the refusal, not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

from harness.train.model import PRESETS

DEFAULT_RECIPES = ("bf16", "te:delayed", "te:blockwise", "torchao:tensorwise", "torchao:tensorwise+swiglu8")


def _storage(t: torch.Tensor) -> tuple[int, int, str]:
    """(key, bytes, dtype) of the memory behind a saved tensor; a wrapper subclass counts its payload."""
    payload = getattr(t, "_data", None)  # torchao's Float8TrainingTensor keeps its float8 bytes in _data
    if isinstance(payload, torch.Tensor):
        t = payload
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes(), str(t.dtype).removeprefix("torch.")
    except (RuntimeError, NotImplementedError):  # a subclass without a real storage: count its elements
        return id(t), t.numel() * t.element_size(), str(t.dtype).removeprefix("torch.")


@contextlib.contextmanager
def saved_tensor_bytes(exclude: list[torch.Tensor]):
    """Within the block, record every tensor autograd saves; yields {dtype: bytes} (unique storages).

    Tensors sharing a storage with one in `exclude` (parameters, the input) are not counted.
    """
    skip = {_storage(t)[0] for t in exclude}
    seen: dict[int, tuple[int, str]] = {}
    by_dtype: dict[str, int] = defaultdict(int)

    def pack(t: torch.Tensor) -> torch.Tensor:
        key, nbytes, dtype = _storage(t)
        if key not in skip and key not in seen:
            seen[key] = (nbytes, dtype)
            by_dtype[dtype] += nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield by_dtype


def measure_layer(shape, backend, device: torch.device, compile: bool) -> dict:
    """held_bytes (and, eager, saved bytes by dtype) of one decoder layer's forward on `shape`."""
    from benchmarks.cases import _block, _holder

    torch.manual_seed(0)
    with torch.device(device):
        block, call = _block("decoder_layer", shape, device)
    block = backend.convert(_holder(block.float())).model.layers[0]
    if compile:
        torch._dynamo.reset()
        block.compile()
    block.train()
    x = torch.randn(shape.batch, shape.seq_len, PRESETS[shape.preset]["hidden_size"], device=device, requires_grad=True)
    for _ in range(2):  # compile, TE workspaces and scaling state: none of it is per-step memory
        with backend.autocast(device):
            out = call(block, x)
        out.backward(torch.ones_like(out))
    block.zero_grad(set_to_none=True)
    x.grad = None
    del out
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    hooks = saved_tensor_bytes([*block.parameters(), x]) if not compile else contextlib.nullcontext({})
    with hooks as saved, backend.autocast(device):
        out = call(block, x)
    torch.cuda.synchronize(device)
    held = torch.cuda.memory_allocated(device) - before - out.numel() * out.element_size()
    forward_peak = torch.cuda.max_memory_allocated(device) - before
    out.backward(torch.ones_like(out))
    torch.cuda.synchronize(device)
    step_peak = torch.cuda.max_memory_allocated(device) - before
    result = dict(
        held_bytes=held, held_bytes_per_token=held / shape.tokens,
        forward_peak_bytes=forward_peak, step_peak_bytes=step_peak,
    )  # fmt: skip
    if not compile:
        result["saved_bytes_by_dtype"] = dict(sorted(saved.items()))
    del block, x, out
    gc.collect()
    torch.cuda.empty_cache()
    return result


def run(recipes, shapes, compile_modes, device: torch.device) -> list[dict]:
    from benchmarks.cases import SHAPES, available_backend

    rows = []
    for shape_name in shapes:
        shape = SHAPES[shape_name]
        for recipe in recipes:
            backend, refused = available_backend(recipe, device)
            if refused:
                rows.append(dict(shape=shape_name, recipe=recipe, refused=refused))
                continue
            for compile in compile_modes:
                row = dict(shape=shape_name, recipe=recipe, compile=compile, **shape.describe())
                row.update(measure_layer(shape, backend, device, compile))
                rows.append(row)
                print(table_line(row), flush=True)
    return rows


def table_line(row: dict) -> str:
    if "refused" in row:
        return f"| {row['shape']} | {row['recipe']} | - | refused: {row['refused']} |"
    saved = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in row.get("saved_bytes_by_dtype", {}).items()) or "-"
    return (
        f"| {row['shape']} | {row['recipe']} | {'compiled' if row['compile'] else 'eager'} | "
        f"{row['held_bytes'] / 2**20:.0f} | {row['held_bytes_per_token']:.0f} | "
        f"{row['step_peak_bytes'] / 2**20:.0f} | {saved} |"
    )


HEADER = (
    "| shape | recipe | mode | held MiB | held bytes/token | fwd+bwd peak MiB | saved MiB by dtype (eager) |\n"
    "|---|---|---|---:|---:|---:|---|"
)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cases import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--compile", choices=("0", "1", "both"), default="both")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.memory needs a CUDA GPU (it reads torch.cuda memory statistics)", file=sys.stderr)
        return 2
    modes = {"0": [False], "1": [True], "both": [False, True]}[args.compile]
    print(HEADER, flush=True)
    rows = run(args.recipes, args.shapes, modes, torch.device("cuda"))
    if args.out:
        args.out.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
