"""`harness data export BENCH --out DIR`: fetch a benchmark from the Hugging Face hub into the offline layout.

Writes DIR/<bench>/<part>.jsonl with the hub's own columns (the loaders in benchmarks.py read
them as they are). Needs network and, for GPQA (a gated dataset), a Hugging Face token with
access (HF_TOKEN). Run it once on a machine with network, then copy DIR to the cluster.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from harness.errors import InvalidInput
from harness.eval.benchmarks import get_benchmark

HUB_HOST = "huggingface.co"


def hub_reachable(host: str = HUB_HOST, timeout_s: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _write_jsonl(path: Path, records) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    count = 0
    with tmp.open("w") as fh:
        for record in records:
            fh.write(json.dumps(record, default=str) + "\n")
            count += 1
    tmp.replace(path)
    return count


def export_benchmark(name: str, out_dir: str | Path) -> Path:
    """Export benchmark `name` to out_dir/<name>/; returns that folder."""
    bench = get_benchmark(name)
    target = Path(out_dir) / name
    if bench.generate is not None:
        _write_jsonl(target / "test.jsonl", bench.generate(200))
        return target
    if not hub_reachable():
        raise InvalidInput(
            f"harness data export {name}: cannot reach {HUB_HOST} (offline?); run this on a machine with network "
            f"and copy {target} here, or place the files there by hand (layout: docs/EVAL.md)"
        )
    hub = bench.hub
    try:
        if hub.files:
            from huggingface_hub import hf_hub_download

            for file in hub.files:
                local = hf_hub_download(hub.repo, file, repo_type="dataset")
                _write_jsonl(target / file, (json.loads(line) for line in Path(local).open() if line.strip()))
        else:
            from datasets import load_dataset

            for config in hub.configs:
                rows = load_dataset(hub.repo, config, split=hub.split)
                _write_jsonl(target / f"{config or hub.split}.jsonl", iter(rows))
    except InvalidInput:
        raise
    except Exception as exc:  # hub errors come in many types (auth, gated, missing config)
        raise InvalidInput(
            f"harness data export {name}: fetching {hub.repo} failed: {exc}. "
            "Gated datasets (GPQA) need `huggingface-cli login` or HF_TOKEN with access granted"
        ) from None
    return target
