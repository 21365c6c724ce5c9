"""Self-check of every precision recipe: one forward/backward on a small Qwen2, compared to bf16.

    python -m harness.train.precision.selfcheck [--device cuda] [--recipes te:blockwise,emulated:block]

For the GPU machine (TE and torchao cannot run here): each recipe is refused with its reason,
or runs one step from the same initial weights and batch; its loss must be finite and within
--tolerance (relative) of bf16's, and every converted parameter must get a finite gradient.
Exit code 0 when every recipe that was not refused passed. Not a test: it needs the hardware.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--tolerance", type=float, default=0.02, help="max relative loss difference to bf16")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    base_loss, _ = one_step("bf16", device)
    print(f"device {device}: bf16 loss {base_loss:.5f}")
    failed = 0
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
