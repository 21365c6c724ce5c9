"""The PrecisionBackend protocol and helpers shared by the backends.

A backend converts a freshly initialised model (after the seed fixed its weights, so matched
arms start equal) and supplies the context every forward runs under. The trainer calls only
these methods, so the loop never branches on precision (torchtitan's "model converter" idea).
`export_state` is the way back (torchtitan's `state_dict_transform`): it turns the converted
model's full state dict into the plain Hugging Face one, so checkpoint code knows no backend.
Backends subclass the protocol to inherit its defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from harness.errors import InvalidInput
from harness.recipes import Recipe


@runtime_checkable
class PrecisionBackend(Protocol):
    name: str  # the recipe name, e.g. "te:blockwise"
    emulated: bool  # True when FP8 numerics are simulated (no speed or memory meaning)

    def check_available(self, device: torch.device) -> None:
        """Raise InvalidInput with a clear refusal when this recipe cannot run on `device`."""

    def convert(self, model: nn.Module) -> nn.Module:
        """Swap modules for their FP8 counterparts (in place is fine); return the model."""

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The context each forward (and loss) runs under."""

    def export_state(self, state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
        """The converted model's full state dict as the Hugging Face model of `config` names it.

        Identity by default: backends that keep HF's modules and parameter names need nothing.
        """
        return state


def bf16_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """BF16 autocast over fp32 master weights: the compute dtype every arm shares outside FP8 GEMMs."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def decoder_linears(model: nn.Module, keep=lambda module: True) -> Iterator[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, linear) for every nn.Linear inside the decoder layers.

    Embeddings and lm_head stay in high precision in every FP8 recipe we reproduce (DeepSeek-V3,
    InfiR2, TE and torchao defaults), so only linears under model.model.layers are returned.
    """
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise InvalidInput(f"precision: {type(model).__name__} has no model.layers; only decoder LMs are supported")
    for layer in layers:
        for parent in layer.modules():
            for attr, child in list(parent.named_children()):
                if type(child) is nn.Linear and keep(child):
                    yield parent, attr, child


def cuda_capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(device)


def require_gpu(recipe: Recipe, device: torch.device, package: str) -> None:
    """Refuse a hardware recipe on a device without FP8 support, naming what is missing and its CPU fallback."""
    minimum, fallback = recipe.min_capability, recipe.fallback
    capability = cuda_capability(device)
    need = {
        (8, 9): "Ada, Hopper or newer",
        (9, 0): "Hopper or newer",
        (10, 0): "Blackwell (compute capability 10.0) or newer",
    }
    wanted = f"an NVIDIA GPU with FP8 support ({need.get(minimum, f'compute capability {minimum[0]}.{minimum[1]}+')})"
    if capability is None:
        raise InvalidInput(
            f"{recipe.name} needs {wanted} and {package}; none here (device {device}) — use {fallback} on CPU"
        )
    if capability < minimum:
        raise InvalidInput(
            f"{recipe.name} needs {wanted}; this GPU has compute capability {capability[0]}.{capability[1]} — "
            f"pick another recipe or use {fallback}"
        )
