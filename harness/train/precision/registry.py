"""The precision registry: a recipe name -> its backend, built from the parsed `harness.recipes.Recipe`.

The names, their families and requirements live in `harness.recipes` (importable without torch,
so `harness validate` checks names without it); this module only builds backends. Each
recipe's `builder` is "module:attribute" of a factory `make(recipe: Recipe) -> PrecisionBackend`.
"""

from __future__ import annotations

from harness.recipes import RECIPES, Recipe, is_emulated, parse

__all__ = ["RECIPES", "Recipe", "get_backend", "is_emulated"]


def get_backend(recipe: str | Recipe):
    """Instantiate the backend for a recipe (a name or a parsed Recipe; imports its module on first use)."""
    return (recipe if isinstance(recipe, Recipe) else parse(recipe)).build()
