"""Pair each FP8 arm with the BF16 baseline of the same stage and seed, refusing unmatched runs.

Two runs are comparable only when everything but the precision recipe is identical: the spec
fingerprints agree (RunSpec.matched_fields()) and the software that ran them (torch,
transformers) is the same version. Anything else is an error naming the field and both runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput
from harness.recipes import is_emulated
from harness.store import RunDir, suite_runs
from harness.suite import RunSpec

BASELINE_RECIPE = "bf16"
USABLE_STATUSES = ("completed", "imported")
# A BF16 arm timed with another torch or cuBLAS is no baseline (cuBLAS: the GEMMs' kernels).
MATCHED_SOFTWARE = ("torch", "transformers", "cublas")


@dataclass
class Run:
    """One run directory with its parsed spec and manifest."""

    dir: RunDir
    spec: RunSpec
    manifest: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.manifest.get("status") or "unknown")

    @property
    def usable(self) -> bool:
        return self.status in USABLE_STATUSES

    @property
    def emulated(self) -> bool:
        return bool(self.manifest.get("emulated")) or is_emulated(self.spec.recipe)

    @property
    def key(self) -> tuple[str, int]:
        return self.spec.stage_name, self.spec.seed


@dataclass
class Pair:
    baseline: Run
    candidate: Run

    @property
    def label(self) -> str:
        return f"{self.candidate.spec.stage_name}/{self.candidate.spec.arm}/s{self.candidate.spec.seed}"


def load_runs(suite_dir: Path) -> list[Run]:
    """Every run directory of a suite with its spec and manifest (an absent manifest is {})."""
    runs = []
    for run_dir in suite_runs(suite_dir):
        manifest = run_dir.read_manifest() if run_dir.manifest.is_file() else {}
        runs.append(Run(run_dir, run_dir.read_spec(), manifest))
    return runs


def software_versions(manifest: dict) -> dict[str, Any]:
    """torch / transformers / cuBLAS versions from a manifest (under "versions", or at the top level)."""
    versions = manifest.get("versions") or {}
    return {name: versions.get(name, manifest.get(name)) for name in MATCHED_SOFTWARE}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Dotted path of the first field where two nested JSON values differ (None if equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}".lstrip(".")
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found.lstrip(".")
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found.lstrip(".")
        return None
    return None if a == b else (path.lstrip(".") or "(value)")


def check_matched(baseline: Run, candidate: Run) -> None:
    """Raise InvalidInput naming the first differing field when two runs are not matched arms."""
    base_fields, cand_fields = baseline.spec.matched_fields(), candidate.spec.matched_fields()
    where = first_difference(base_fields, cand_fields)
    if where is not None:
        raise InvalidInput(
            f"{candidate.dir.path} is not matched with {baseline.dir.path}: spec.json field {where!r} differs "
            f"({_at(cand_fields, where)!r} vs {_at(base_fields, where)!r}); arms must differ only in their "
            "precision recipe, so re-run one of them with the same suite settings"
        )
    base_sw, cand_sw = software_versions(baseline.manifest), software_versions(candidate.manifest)
    for name in MATCHED_SOFTWARE:
        if base_sw[name] != cand_sw[name] and base_sw[name] is not None and cand_sw[name] is not None:
            raise InvalidInput(
                f"{candidate.dir.path} is not matched with {baseline.dir.path}: manifest.json {name} version "
                f"differs ({cand_sw[name]} vs {base_sw[name]}); run both arms with the same software"
            )


def _at(data: Any, dotted: str) -> Any:
    node = data
    for part in dotted.replace("[", ".[").split("."):
        if part.startswith("["):
            node = node[int(part[1:-1])] if isinstance(node, list) else None
        elif isinstance(node, dict):
            node = node.get(part, "<absent>")
    return node


def baseline_arm(runs: list[Run]) -> str:
    """The arm whose recipe is bf16 (the one named "bf16" when several arms use bf16)."""
    arms = sorted({r.spec.arm for r in runs if r.spec.recipe == BASELINE_RECIPE})
    if not arms:
        found = ", ".join(sorted({f"{r.spec.arm}={r.spec.recipe}" for r in runs}))
        raise InvalidInput(
            f"no baseline arm with recipe 'bf16' among the runs ({found}); add one to the suite's [arms]"
        )
    if len(arms) > 1:
        if BASELINE_RECIPE in arms:
            return BASELINE_RECIPE
        raise InvalidInput(f"several bf16 arms ({', '.join(arms)}); name the baseline arm 'bf16'")
    return arms[0]


def pair_runs(runs: list[Run]) -> list[Pair]:
    """Pairs (baseline, candidate) for every non-baseline run, in stage, arm, seed order.

    A candidate without a baseline run of the same stage and seed is an error; so is any pair
    that is not matched. Failed runs are still paired (compare reports them as failed).
    """
    base_arm = baseline_arm(runs)
    baselines = {r.key: r for r in runs if r.spec.arm == base_arm}
    pairs = []
    for run in runs:
        if run.spec.arm == base_arm:
            continue
        base = baselines.get(run.key)
        if base is None:
            raise InvalidInput(
                f"{run.dir.path}: no baseline run '{run.spec.stage_name}-{base_arm}-s{run.spec.seed}' "
                f"in {run.dir.path.parent}; train it (harness run --arm {base_arm}) or remove this run"
            )
        check_matched(base, run)
        pairs.append(Pair(base, run))
    if not pairs:
        raise InvalidInput(f"only baseline runs ({base_arm}) found; nothing to compare against")
    return pairs
