"""Evaluating a suite's runs on one node: all at once, each on its own GPUs, when the GPUs allow.

The arms of a suite are evaluated after every run has trained (harness/engine.py). With vLLM and
G visible GPUs, N runs each get G / N of them (a multiple of tensor_parallel_size; with
eval.data_parallel_size set, that many replicas each) and run side by side, each in its own
`harness eval RUN_DIR` process with CUDA_VISIBLE_DEVICES set to its share: the engines start
together and no run waits for another's slowest samples. Where the GPUs do not allow it (fewer
than N x tensor_parallel_size, unknown, or the transformers backend) the runs are evaluated one
after the other, each on every GPU. Either way a run's results are its own folder's, resumable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from harness.errors import InvalidInput, RunFailed
from harness.eval.procs import pass_interrupt
from harness.suite import EvalConfig


def gpu_shares(runs: int, config: EvalConfig, gpus: list[str] | None) -> list[list[str]] | None:
    """Each run's GPUs when `runs` evaluations fit on `gpus` at once; None when they must take turns."""
    if config.backend != "vllm" or runs < 2 or not gpus:
        return None
    tp = config.tensor_parallel_size
    per_run = tp * (config.data_parallel_size or len(gpus) // (tp * runs))
    if per_run < tp or per_run * runs > len(gpus):
        return None
    return [gpus[i * per_run : (i + 1) * per_run] for i in range(runs)]


def evaluate_side_by_side(run_dirs: list[Path], shares: list[list[str]], quiet: bool, say=print) -> None:
    """`harness eval RUN_DIR` for every run at once, each on its share of the GPUs; their stderr is
    relayed line by line, prefixed with the run's name. Ctrl-C or SIGTERM stops them all (each keeps
    the samples it finished). Raises the first failure once every run has ended: one run failing
    loses none of the others' results."""
    children = []
    for run_dir, share in zip(run_dirs, shares, strict=True):
        say(f"eval {run_dir.name} on GPUs {','.join(share)}")
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(share)}
        cmd = [sys.executable, "-m", "harness.cli", "eval", str(run_dir), *(["--quiet"] if quiet else [])]
        children.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1))
    tails: list[list[str]] = [[] for _ in children]
    relays = [
        threading.Thread(target=_relay, args=(child, run_dir.name, tail), daemon=True)
        for child, run_dir, tail in zip(children, run_dirs, tails, strict=True)
    ]
    for relay in relays:
        relay.start()
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt as exc:
        pass_interrupt(children, exc)
        raise
    for relay in relays:
        relay.join()
    failures = [_failure(run_dir, code, tail) for run_dir, code, tail in zip(run_dirs, codes, tails, strict=True)]
    interrupted = [code for code in codes if code in (130, 128 + signal.SIGTERM)]
    if interrupted:
        raise KeyboardInterrupt
    for failure in failures:
        if failure is not None:
            raise failure


def _relay(child: subprocess.Popen, name: str, tail: list[str]) -> None:
    for line in child.stderr:
        sys.stderr.write(f"[{name}] {line}")
        tail.append(line.rstrip())
        del tail[:-20]


def _failure(run_dir: Path, code: int, tail: list[str]) -> Exception | None:
    if code == 0 or code in (130, 128 + signal.SIGTERM):
        return None
    said = [line.removeprefix("harness eval: ") for line in tail if line.startswith("harness eval: ")]
    message = said[-1] if said else f"{run_dir.name}: `harness eval` exited with code {code} (see above)"
    return InvalidInput(message) if code == InvalidInput.exit_code else RunFailed(message)
