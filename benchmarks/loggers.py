"""What the step loggers cost per step: `python -m benchmarks.loggers [--steps N] [--work-ms MS]`.

A Telemetry loop on the CPU with fake steps (a matmul loop of --work-ms), in alternating blocks
with telemetry.loggers = [], ["wandb"] (offline, in a temp folder) and ["tensorboard"]. Reported
per logger: the median wall time per step and the median time of the loggers' log() call, which
runs between two steps (when the previous step's metrics.jsonl line is written), so it never
enters step_time_s but does add to the wall time of a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _block(spec, root: Path, steps: int, work_s: float) -> tuple[float, float]:
    import torch

    from harness.store import RunDir
    from harness.telemetry import Telemetry

    tel = Telemetry(RunDir(root), spec, device=torch.device("cpu"), flops_per_token=None, total_steps=steps, quiet=True)
    tel.start()
    calls: list[float] = []
    if tel._loggers is not None:
        log = tel._loggers.log

        def timed(*args):
            begin = time.perf_counter()
            log(*args)
            calls.append(time.perf_counter() - begin)

        tel._loggers.log = timed
    a = torch.randn(256, 256)
    begin = time.perf_counter()
    for step in range(1, steps + 1):
        with tel.step(step) as rec:
            until = time.perf_counter() + work_s
            while time.perf_counter() < until:
                a @ a
            rec.update(loss=1.0 / step, lr=1e-3, grad_norm=0.5, tokens=4096)
    wall = (time.perf_counter() - begin) / steps
    tel.finish("completed")
    return wall, statistics.median(calls) if calls else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--work-ms", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "telemetry"))
    from fakes import make_spec  # a tiny RunSpec built in code

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            os.environ[name] = str(Path(tmp) / name.lower())
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
        arms = {"none": (), "wandb": ("wandb",), "tensorboard": ("tensorboard",)}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
        for repeat in range(args.repeats):
            for name, loggers in arms.items():
                root = Path(tmp) / f"{name}-{repeat}"
                results[name].append(_block(make_spec(loggers=loggers), root, args.steps, args.work_ms / 1000))
    for name, rows in results.items():
        wall = statistics.median(w for w, _ in rows) * 1e3
        call = statistics.median(c for _, c in rows) * 1e6
        print(f"{name:12s} wall per step {wall:8.3f} ms   log() per step {call:7.0f} us")


if __name__ == "__main__":
    main()
