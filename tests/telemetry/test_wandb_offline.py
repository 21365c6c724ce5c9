"""Reading W&B run files back: the transaction log's framing, a torn tail, records spanning blocks."""

from __future__ import annotations

import pytest

from harness.errors import InvalidInput
from harness.telemetry.wandb_logger import close_wandb
from harness.telemetry.wandb_offline import BLOCK, read_wandb_run, transaction_log_records, wandb_files


def _offline_run(root, steps, *, big_note: str = ""):
    import wandb

    settings = wandb.Settings(console="off", x_disable_stats=True, quiet=True)
    run = wandb.init(id="readback", project="p", group="g", dir=str(root), mode="offline", settings=settings,
                     config={"note": big_note})  # fmt: skip
    for step in steps:
        run.log({"train/loss": 1.0 / step}, step=step)
    run.finish()
    close_wandb()  # the log is complete on disk only once wandb's service has stopped
    return wandb_files(root)[0]


def test_a_record_larger_than_a_block_reads_back_whole(tmp_path):
    note = "".join(chr(65 + i % 26) for i in range(3 * BLOCK))  # spans four 32 KiB blocks
    path = _offline_run(tmp_path, range(1, 4), big_note=note)
    run = read_wandb_run(path.parent)
    assert run.config["note"] == note
    assert {s: r["train/loss"] for s, r in run.history.items()} == {1: 1.0, 2: 0.5, 3: pytest.approx(1 / 3)}


def test_a_torn_tail_ends_the_log_where_it_tears(tmp_path):
    path = _offline_run(tmp_path, range(1, 11))
    whole = list(transaction_log_records(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # a killed writer: the last record half there
    torn = list(transaction_log_records(path))
    assert 0 < len(torn) < len(whole) and torn == whole[: len(torn)]


def test_a_file_that_is_not_a_wandb_log_is_refused(tmp_path):
    bogus = tmp_path / "run-x.wandb"
    bogus.write_bytes(b"hello world")
    with pytest.raises(InvalidInput, match="not a W&B transaction log"):
        list(transaction_log_records(bogus))


def test_a_folder_without_wandb_files_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match=r"no run-<id>\.wandb file"):
        read_wandb_run(tmp_path)
