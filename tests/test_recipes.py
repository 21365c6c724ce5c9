"""harness/recipes.py: one Recipe record per name, read by suites, telemetry, analysis and backends."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import InvalidInput
from harness.recipes import RECIPES, parse, split_modifier

ROOT = Path(__file__).resolve().parents[1]


def test_suites_and_recipes_load_without_torch():
    code = "import sys, harness.recipes, harness.suite; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_hardware_recipe_falls_back_to_an_emulated_one_with_the_same_modifier():
    for recipe in RECIPES.values():
        if recipe.min_capability is None:
            assert recipe.fallback is None
            continue
        twin = RECIPES[recipe.fallback]
        assert twin.emulated and twin.min_capability is None and twin.swiglu8 == recipe.swiglu8, recipe.name


def test_a_recipe_says_its_family_scaling_modifier_and_whether_it_is_emulated():
    assert parse("torchao:tensorwise+swiglu8") == RECIPES["torchao:tensorwise+swiglu8"]
    r = parse("torchao:tensorwise+swiglu8")
    assert (r.family, r.scaling, r.swiglu8, r.emulated, r.base) == ("torchao", "tensorwise", True, False,
                                                                     "torchao:tensorwise")  # fmt: skip
    assert parse("emulated:block").emulated and not parse("te:blockwise").emulated
    assert parse("te:blockwise").min_capability == (9, 0)


def test_an_unknown_recipe_names_the_closest_known_one():
    with pytest.raises(InvalidInput, match=r"unknown recipe 'te:blokwise'; did you mean 'te:blockwise'\?"):
        parse("te:blokwise")


def test_recipe_modifier_parses_and_an_unknown_one_names_the_known_one():
    assert split_modifier("torchao:tensorwise+swiglu8") == ("torchao:tensorwise", True)
    assert split_modifier("torchao:tensorwise") == ("torchao:tensorwise", False)
    with pytest.raises(InvalidInput, match=r"unknown modifier \+fp8act; the only one is \+swiglu8"):
        split_modifier("torchao:tensorwise+fp8act")
    with pytest.raises(InvalidInput, match=r"unknown modifier \+fp8act"):
        parse("torchao:tensorwise+fp8act")


@pytest.mark.parametrize("name", ["bf16", "emulated:row+swiglu8", "te:delayed", "torchao:rowwise+swiglu8"])
def test_a_backend_receives_the_parsed_recipe(name):
    from harness.train.precision.registry import get_backend

    backend = get_backend(name)
    assert backend.recipe is RECIPES[name] and backend.emulated == RECIPES[name].emulated


def test_checkpoint_code_imports_nothing_from_the_precision_backends():
    # The HF export goes through PrecisionBackend.export_state: a new backend never edits checkpoint.py.
    tree = ast.parse((ROOT / "harness" / "train" / "checkpoint.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("harness.train.precision")]
