"""manifest.json: versions, GPU, host, argv, times, status, emulated, fingerprint, recipe."""

from __future__ import annotations

import re
from types import SimpleNamespace

import torch

from harness.telemetry.manifest import build_manifest, cublas_version, git_sha, utc_now, versions

MANIFEST_KEYS = {
    "run_id",
    "suite",
    "stage",
    "arm",
    "recipe",
    "seed",
    "fingerprint",
    "emulated",
    "status",
    "reason",
    "started_at",
    "ended_at",
    "versions",
    "git_sha",
    "device",
    "gpu",
    "world_size",
    "host",
    "argv",
    "nvml",
}


def test_manifest_has_the_documented_keys(spec):
    manifest = build_manifest(
        spec,
        device=torch.device("cpu"),
        world_size=1,
        emulated=False,
        nvml={"sampled": False, "reason": "no GPU: device is cpu"},
    )
    assert MANIFEST_KEYS <= manifest.keys()
    assert manifest["status"] == "running" and manifest["ended_at"] is None
    assert manifest["fingerprint"] == spec.fingerprint and manifest["recipe"] == "bf16"
    assert manifest["gpu"] == {"model": None, "count": 0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["started_at"])


def test_versions_name_every_tracked_package():
    found = versions()
    assert {
        "python",
        "torch",
        "cuda",
        "cublas",
        "driver",
        "transformer_engine",
        "torchao",
        "transformers",
        "harness",
    } <= found.keys()
    assert found["torch"] == torch.__version__.split("+")[0] or found["torch"] == torch.__version__


def test_cublas_version_comes_from_the_first_library_that_has_the_symbol():
    # What cublasLtGetVersion() returns: major * 10000 + minor * 100 + patch.
    torch_wheel = SimpleNamespace(cublasLtGetVersion=lambda: 130100)
    preloaded = SimpleNamespace(cublasLtGetVersion=lambda: 131000)
    no_cublas = SimpleNamespace()
    assert cublas_version([no_cublas, preloaded, torch_wheel]) == "13.10.0"
    assert cublas_version([torch_wheel]) == "13.1.0"
    assert cublas_version([no_cublas]) is None


def test_git_sha_is_none_outside_a_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_GIT_SHA", raising=False)
    assert git_sha(tmp_path) is None


def test_git_sha_of_an_archive_copy_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_GIT_SHA", "0123abcd" * 5)
    assert git_sha(tmp_path) == "0123abcd" * 5
    assert git_sha() == "0123abcd" * 5  # even where the package sits inside another checkout


def test_git_sha_inside_a_repository_is_a_commit_hash(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.delenv("HARNESS_GIT_SHA", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    assert re.fullmatch(r"[0-9a-f]{40}", git_sha(tmp_path))


def test_utc_now_is_iso_utc():
    assert utc_now().endswith("Z")
