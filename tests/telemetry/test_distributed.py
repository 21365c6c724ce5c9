"""Two CPU ranks over gloo: tokens are summed, rank 0 alone writes, every rank gets the summary."""

from __future__ import annotations

import json

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fakes import make_spec

from harness.store import RunDir
from harness.telemetry import Telemetry


def _worker(rank: int, root: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{root}/rendezvous", rank=rank, world_size=2)
    try:
        spec = make_spec(warmup_steps=0)
        run = RunDir(f"{root}/{spec.run_id}")
        tel = Telemetry(
            run,
            spec,
            device=torch.device("cpu"),
            flops_per_token=None,
            total_steps=3,
            quiet=True,
            world_size=2,
            rank=rank,
        )
        tel.start()
        for step in (1, 2, 3):
            with tel.step(step) as rec:
                rec.update(loss=1.0, tokens=10 * (rank + 1))  # rank 0: 10 tokens, rank 1: 20
        summary = tel.finish("completed")
        with open(f"{root}/summary-rank{rank}.json", "w") as fh:
            json.dump(summary, fh)
    finally:
        dist.destroy_process_group()


def test_two_ranks_sum_tokens_and_only_rank_0_writes(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    run = RunDir(tmp_path / make_spec().run_id)
    records = run.read_metrics()
    assert [r["tokens"] for r in records] == [30, 30, 30]
    summaries = [json.loads((tmp_path / f"summary-rank{r}.json").read_text()) for r in (0, 1)]
    assert summaries[0] == summaries[1] == run.read_summary()
    assert summaries[0]["world_size"] == 2 and summaries[0]["tokens_total"] == 90
    assert sorted(p.name for p in run.path.iterdir()) == ["manifest.json", "metrics.jsonl", "summary.json"]
