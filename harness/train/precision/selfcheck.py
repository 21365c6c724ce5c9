"""Self-check of every precision recipe: one forward/backward on a small Qwen2, compared to bf16.

    python -m harness.train.precision.selfcheck [--device cuda] [--recipes te:blockwise,emulated:block]

For the GPU machine (TE and torchao cannot run here): each recipe is refused with its reason,
or runs one step from the same initial weights and batch; its loss must be finite and within
--tolerance (relative) of bf16's, and every converted parameter must get a finite gradient.
Where Transformer Engine imports, it first checks that the fused TE decoder layer (te_layer.py)
computes what the HF layer computes: same weights, BF16 autocast without FP8, loss within
--tolerance / 4. Exit code 0 when every check that was not refused passed. Not a test: it needs
the hardware.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys

import torch

from harness.errors import InvalidInput
from harness.train.precision.registry import RECIPES, get_backend

# Dimensions divisible by 128, so blockwise kernels (1x128 / 128x128) accept every decoder linear.
SHAPE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1024, max_position_embeddings=512)  # fmt: skip


def one_step(recipe: str, device: torch.device, seed: int = 0) -> tuple[float, float]:
    """(loss, grad norm) of one forward/backward of the small model under `recipe`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    backend = get_backend(recipe)
    backend.check_available(device)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**SHAPE, use_cache=False)).float().to(device)
    model = backend.convert(model)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SHAPE["vocab_size"], (4, 256), generator=generator).to(device)
    with backend.autocast(device):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if any(g is None for g in grads):
        raise RuntimeError("some parameters got no gradient")
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    return float(loss.detach()), float(norm)


def fused_layer_loss_gap(device: torch.device, seed: int = 0) -> float:
    """Relative loss difference of the small model with TE fused layers vs HF layers (BF16, no FP8)."""
    import transformer_engine.pytorch as te
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.train.precision.te_layer import FusedQwen2DecoderLayer

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**SHAPE, use_cache=False)).float().to(device)
    ids = torch.randint(0, SHAPE["vocab_size"], (4, 256), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        reference = float(model(input_ids=ids, labels=ids).loss)
        layers = model.model.layers
        for i, layer in enumerate(layers):
            layers[i] = FusedQwen2DecoderLayer.from_hf(layer, te)
        fused = float(model(input_ids=ids, labels=ids).loss)
    print(f"fused TE layer vs HF layer (bf16, no FP8): loss {fused:.5f} vs {reference:.5f}")
    return abs(fused - reference) / reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--tolerance", type=float, default=0.02, help="max relative loss difference to bf16")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    failed = 0
    if device.type == "cuda" and importlib.util.find_spec("transformer_engine") is not None:
        gap = fused_layer_loss_gap(device)
        failed += not gap <= args.tolerance / 4
        print(f"  fused layer {'ok' if gap <= args.tolerance / 4 else 'FAILED'}: rel diff {gap:.2e}")
    base_loss, _ = one_step("bf16", device)
    print(f"device {device}: bf16 loss {base_loss:.5f}")
    for recipe in args.recipes.split(","):
        try:
            loss, norm = one_step(recipe, device)
        except InvalidInput as exc:
            print(f"  {recipe:20s} refused: {exc}")
            continue
        except Exception as exc:  # report every recipe, then fail
            print(f"  {recipe:20s} FAILED: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        rel = abs(loss - base_loss) / base_loss
        ok = math.isfinite(loss) and math.isfinite(norm) and rel <= args.tolerance
        failed += not ok
        label = " (emulated)" if get_backend(recipe).emulated else ""
        print(
            f"  {recipe:20s} {'ok' if ok else 'FAILED'}: loss {loss:.5f} (rel diff {rel:.2e}), grad norm {norm:.4g}{label}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
