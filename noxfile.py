"""Sessions: tests, lint, smoke, parity-1.5b, parity-7b, bench.

    nox -s smoke                      # the whole pipeline on the tiny CPU suite
    nox -s tests                      # the test suite (what CI runs)
    nox -s parity-7b -- --set model.path=/models/Qwen2.5-7B --set stages.sft.data.path=/data/sft.jsonl
    nox -s parity-7b -- --nnodes 2 --node-rank 0 --rdzv-endpoint head:29500   # two nodes

torch is installed first and never by the package's own dependencies: CPU sessions take
HARNESS_TORCH (default torch==2.13.0, the CPU build); GPU sessions use the cluster's torch,
Transformer Engine and torchao through the system site-packages.
"""

from __future__ import annotations

import json
import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
TORCH = os.environ.get("HARNESS_TORCH", "torch==2.13.0")
LAUNCH_FLAGS = {"--nnodes", "--nproc-per-node", "--node-rank", "--rdzv-endpoint", "--slurm"}


def _install_cpu(session: nox.Session, extras: str = "", *, show: bool = False) -> None:
    """torch first (never through the package's dependencies), then the harness; `show` prints pip's progress."""
    if show:
        session.log(f"installing {TORCH} (the CPU build, about 200 MB) and the harness: pip's progress follows")
    session.install(TORCH, silent=not show)
    session.install("-e", f".{extras}", silent=not show)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite on CPU (pytest's exit 5, no tests collected, counts as a failure here)."""
    _install_cpu(session, "[test,tensorboard,eval]")
    session.run("pytest", "-q", *session.posargs, env={"CUDA_VISIBLE_DEVICES": ""})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "tests", "benchmarks", "scripts", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "tests", "benchmarks", "scripts", "noxfile.py")


@nox.session(python="3.11")
def smoke(session: nox.Session) -> None:
    """Train bf16 and emulated FP8 on the tiny suite, evaluate, compare, report and gate."""
    _install_cpu(session, "[eval]", show=True)
    # The tiny model's ops are too small to gain from a second thread, and on a busy 2-core machine
    # OpenMP's spinning threads made its steps 4x slower (0.30 vs 1.19 s, measured): one per process.
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    session.run("harness", "run", "suites/smoke.toml", *session.posargs, env={"OMP_NUM_THREADS": threads})


def _parity(session: nox.Session, suite: str) -> None:
    # The cluster's torch/TE/torchao stay as they are: the package adds only pure-Python needs.
    session.install("-e", ".[eval]")
    args = list(session.posargs)
    if LAUNCH_FLAGS & {a.split("=")[0] for a in args}:
        session.run("harness", "launch", f"suites/{suite}.toml", *args)
    else:
        session.run("harness", "run", f"suites/{suite}.toml", *args)


@nox.session(name="parity-1.5b", venv_params=["--system-site-packages"])
def parity_1_5b(session: nox.Session) -> None:
    """Qwen2.5-1.5B BF16 vs te:blockwise (posargs: --set overrides or launch flags)."""
    _parity(session, "parity-1.5b")


@nox.session(name="parity-7b", venv_params=["--system-site-packages"])
def parity_7b(session: nox.Session) -> None:
    """Qwen2.5-7B BF16 vs te:blockwise (posargs: --set overrides or launch flags)."""
    _parity(session, "parity-7b")


def _bench_baseline(session: nox.Session) -> str | None:
    """The baseline file to compare against, or None (see bench's docstring)."""
    explicit = os.environ.get("HARNESS_BENCH_BASELINE")
    if explicit:
        return None if explicit.lower() == "none" else explicit
    compiled = os.environ.get("HARNESS_BENCH_COMPILE", "0") not in ("", "0", "false", "False")
    baseline = f"benchmarks/baselines/h100{'-compile' if compiled else ''}.json"
    if not os.path.isfile(baseline):
        return None
    with open(baseline) as f:
        recorded = json.load(f).get("machine_info", {}).get("gpu", {}).get("device")
    probe = "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA GPU')"
    here = session.run("python", "-c", probe, silent=True).strip()
    if here != recorded:
        session.log(f"{baseline} was recorded on {recorded}; this is {here}: measuring without comparing "
                    "(HARNESS_BENCH_BASELINE=FILE compares against another file)")  # fmt: skip
        return None
    return baseline


@nox.session(venv_params=["--system-site-packages"])
def bench(session: nox.Session) -> None:
    """Microbenchmarks of FP8 recipes vs BF16 on a GPU (pytest-benchmark); skips cleanly without one.

    A median more than 10% slower than the baseline fails the run. The baseline is
    HARNESS_BENCH_BASELINE ("none": no comparison), else the committed one for the mode
    (benchmarks/baselines/h100.json eager, h100-compile.json with HARNESS_BENCH_COMPILE=1), used
    only on the GPU it was recorded on: elsewhere the session says so and only measures.
    """
    # The GPU's torch comes from the system site-packages; without one there is nothing to measure.
    probe = "import importlib.util as u; print(u.find_spec('torch') is not None)"
    if session.run("python", "-c", probe, silent=True).strip() != "True":
        session.skip("no torch in the system site-packages: the benchmarks need a CUDA GPU and the cluster's torch")
    session.install("-e", ".[test]")
    baseline = _bench_baseline(session)
    compare = [f"--benchmark-compare={baseline}", "--benchmark-compare-fail=median:10%"] if baseline else []
    session.run("pytest", "benchmarks", "--benchmark-only", *compare, *session.posargs)
