"""Precision recipes: one `Recipe` record per name, importable without torch.

Everything that asks about a recipe reads it here: suite validation (is the name known?),
telemetry and analysis (is it emulated?), preflight and the backends (which GPU does it need,
what runs on CPU instead?), the precision registry (which module builds its backend). A backend
receives the parsed `Recipe`, never the raw string.

    name                         family    scaling     +swiglu8  emulated  min. capability  CPU fallback
    bf16                         bf16      -           no        no        -                -
    te:delayed|current           te        per tensor  no        no        8.9 (Ada)        emulated:tensor
    te:blockwise                 te        1x128 /     no        no        9.0 (Hopper)     emulated:block
                                           128x128
    te:mxfp8                     te        MX blocks   no        no        10.0 (Blackwell) emulated:block
    torchao:tensorwise|rowwise   torchao   tensor/row  optional  no        8.9              emulated:tensor|row
    torchao:blockwise            torchao   blocks      no        no        9.0              emulated:block
    deepgemm:blockwise           deepgemm  1x128 /     no        no        9.0 (Hopper      emulated:block
                                           128x128                         only; nvcc)
    emulated:tensor|row|block    emulated  as named    optional  yes       -                -
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from harness.errors import InvalidInput

SWIGLU8 = "swiglu8"  # the one modifier: SwiGLU inputs kept for backward in FP8 (precision/swiglu8.py)
BASELINE = "bf16"


@dataclass(frozen=True)
class Recipe:
    """A precision recipe, parsed: what it is, where it runs and which module builds its backend."""

    name: str  # as written in a suite, e.g. "torchao:tensorwise+swiglu8"
    family: str  # bf16 | te | torchao | deepgemm | emulated
    scaling: str | None  # the part after "family:", e.g. "blockwise"; None for bf16
    swiglu8: bool  # the +swiglu8 modifier
    emulated: bool  # FP8 numerics simulated in torch: no speed or memory meaning
    min_capability: tuple[int, int] | None  # CUDA compute capability it needs; None: runs on CPU
    fallback: str | None  # the emulated recipe with the same numerics, for machines without FP8
    builder: str  # "module:attribute" of a factory make(recipe: Recipe) -> PrecisionBackend

    @property
    def base(self) -> str:
        """The name without its modifier ("torchao:tensorwise" for "torchao:tensorwise+swiglu8")."""
        return self.name.partition("+")[0]

    def build(self):
        """The backend for this recipe (imports its module on first use)."""
        module_name, attr = self.builder.split(":")
        return getattr(importlib.import_module(module_name), attr)(self)


@dataclass(frozen=True)
class _Family:
    builder: str
    emulated: bool
    swiglu8: tuple[str, ...]  # scalings that take +swiglu8
    scalings: dict[str, tuple[tuple[int, int] | None, str | None]]  # scaling -> (min capability, fallback)


_PRECISION = "harness.train.precision"
# Ada (8.9) has FP8 tensor cores; blockwise scaling needs Hopper (9.0); MX formats Blackwell (10.0).
_FAMILIES: dict[str, _Family] = {
    "te": _Family(f"{_PRECISION}.te:make", False, (), {
        "delayed": ((8, 9), "emulated:tensor"), "current": ((8, 9), "emulated:tensor"),
        "blockwise": ((9, 0), "emulated:block"), "mxfp8": ((10, 0), "emulated:block"),
    }),
    "torchao": _Family(f"{_PRECISION}.torchao:make", False, ("tensorwise", "rowwise"), {
        "tensorwise": ((8, 9), "emulated:tensor"), "rowwise": ((8, 9), "emulated:row"),
        "blockwise": ((9, 0), "emulated:block"),
    }),
    "deepgemm": _Family(f"{_PRECISION}.deepgemm:make", False, (), {"blockwise": ((9, 0), "emulated:block")}),
    "emulated": _Family(f"{_PRECISION}.emulated:make", True, ("tensor", "row", "block"), {
        "tensor": (None, None), "row": (None, None), "block": (None, None),
    }),
}  # fmt: skip


def _table() -> dict[str, Recipe]:
    table = {BASELINE: Recipe(BASELINE, "bf16", None, False, False, None, None, f"{_PRECISION}.bf16:make")}
    for family, spec in _FAMILIES.items():
        for swiglu8 in (False, True):  # a family's plain recipes first, then its +swiglu8 ones
            for scaling, (capability, fallback) in spec.scalings.items():
                if swiglu8 and scaling not in spec.swiglu8:
                    continue
                suffix = f"+{SWIGLU8}" if swiglu8 else ""
                name = f"{family}:{scaling}{suffix}"
                # The emulated twin of a +swiglu8 recipe keeps the modifier.
                table[name] = Recipe(name, family, scaling, swiglu8, spec.emulated, capability,
                                     fallback and fallback + suffix, spec.builder)  # fmt: skip
    return table


RECIPES: dict[str, Recipe] = _table()


def split_modifier(name: str) -> tuple[str, bool]:
    """("torchao:tensorwise", True) for "torchao:tensorwise+swiglu8"; (name, False) without the modifier."""
    base, plus, modifier = name.partition("+")
    if plus and modifier != SWIGLU8:
        raise InvalidInput(f"recipe {name!r}: unknown modifier +{modifier}; the only one is +{SWIGLU8}")
    return base, bool(plus)


def parse(name: str) -> Recipe:
    """The Recipe of a name; InvalidInput naming the closest known one when it is not a recipe."""
    recipe = RECIPES.get(name)
    if recipe is None:
        split_modifier(name)  # an unknown modifier gets its own message
        close = difflib.get_close_matches(name, list(RECIPES), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidInput(f"unknown recipe {name!r}{hint}; known: {', '.join(RECIPES)}")
    return recipe


def is_emulated(name: str) -> bool:
    """True for a known emulated recipe (FP8 simulated in torch); False for anything else."""
    recipe = RECIPES.get(name)
    return recipe is not None and recipe.emulated
