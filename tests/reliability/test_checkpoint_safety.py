"""A tampered or torn DCP checkpoint stops `harness train` with exit 2 and one message naming the
checkpoint folder and the fix, records the run as failed, and never runs code planted in `.metadata`
(torch unpickles that file without restriction: pytorch/pytorch#189308)."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch
from relkit import write_suite
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException

from harness.cli import main
from harness.errors import InvalidInput
from harness.store import RunDir
from harness.train import checkpoint
from harness.train.checkpoint import SafeFileSystemReader

RUN = "cpt-bf16-s0"
LAST = 9  # relkit's suite checkpoints at steps 3, 6 and 9 of 10


class _Payload:
    """Unpickling this calls open(target, "w") (pickled as io.open): the file appears only if the pickle ran code."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return open, (self.target, "w")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, corpus):
    """One completed tiny run (checkpoints at steps 3, 6, 9) that each test copies and damages."""
    folder = tmp_path_factory.mktemp("finished")
    suite = write_suite(folder, corpus)
    assert main(["train", str(suite), "--run", RUN, "--runs-dir", str(folder / "runs"), "--quiet"]) == 0
    return folder


@pytest.fixture
def unfinished(tmp_path, finished):
    """(argv, run): a copy of the finished run without checkpoints/final, so `train` resumes from step 9."""
    shutil.copytree(finished / "runs", tmp_path / "runs")
    run = RunDir(tmp_path / "runs" / "rel" / RUN)
    shutil.rmtree(run.checkpoints / "final")
    argv = ["train", str(finished / "suite.toml"), "--run", RUN, "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    return argv, run


def test_a_planted_metadata_pickle_is_refused_and_its_payload_never_runs(tmp_path, unfinished, capsys):
    argv, run = unfinished
    pwned = tmp_path / "pwned"
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()  # the payload is live: plain pickle (torch's reader) would run it
    folder = run.checkpoints / f"step-{LAST:06d}"
    (folder / "dcp" / ".metadata").write_bytes(pickle.dumps(_Payload(pwned)))

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert not pwned.exists()
    assert f"{folder / 'dcp' / '.metadata'}: refused to load io.open" in err
    assert f"delete {folder} to resume" in err
    assert run.read_manifest()["status"] == "failed"


def test_a_truncated_shard_exits_2_naming_the_folder_and_deleting_it_resumes_from_the_previous(unfinished, capsys):
    argv, run = unfinished
    folder = run.checkpoints / f"step-{LAST:06d}"
    for shard in (folder / "dcp").glob("*.distcp"):
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{folder}: its dcp/ shards are unreadable" in err and f"delete {folder} to resume" in err
    assert "weights_only" not in err and "Traceback" not in err
    manifest = run.read_manifest()
    assert manifest["status"] == "failed" and str(folder) in manifest["reason"]

    shutil.rmtree(folder)  # the fix the message gives
    assert main(argv) == 0
    assert run.read_manifest()["status"] == "completed"
    assert run.read_manifest()["segment_starts"][-1] == 6


def test_a_missing_metadata_file_names_the_shards_folder(unfinished, capsys):
    argv, run = unfinished
    folder = run.checkpoints / f"step-{LAST:06d}"
    (folder / "dcp" / ".metadata").unlink()

    assert main(argv) == 2
    assert f"{folder / 'dcp'}: no readable checkpoint index" in capsys.readouterr().err


def test_the_safe_reader_reads_a_real_index_exactly_as_torchs_reader_does(finished):
    shards = RunDir(finished / "runs" / "rel" / RUN).checkpoints / f"step-{LAST:06d}" / "dcp"
    safe = SafeFileSystemReader(shards)
    ours, theirs = safe.read_metadata(), FileSystemReader(shards).read_metadata()

    assert ours.state_dict_metadata == theirs.state_dict_metadata
    assert ours.storage_data == theirs.storage_data and ours.storage_data
    assert ours.planner_data == theirs.planner_data
    assert ours.storage_meta.load_id == safe.load_id


def test_a_torn_metadata_file_is_invalid_input_naming_it(finished, tmp_path):
    shards = RunDir(finished / "runs" / "rel" / RUN).checkpoints / f"step-{LAST:06d}" / "dcp"
    torn = shutil.copytree(shards, tmp_path / "dcp")
    index = torn / ".metadata"
    index.write_bytes(index.read_bytes()[:100])

    with pytest.raises(InvalidInput, match=f"{index}: unreadable checkpoint index"):
        SafeFileSystemReader(torn).read_metadata()


def test_the_failure_reason_drops_torchs_advice_to_retry_without_weights_only(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"x": _Payload(tmp_path / "unused")}, path)
    with pytest.raises(pickle.UnpicklingError) as caught:
        torch.load(path, weights_only=True)
    assert "weights_only" in str(caught.value)  # torch's own text carries the unsafe advice

    reason = checkpoint._cause(CheckpointException("load failed", {0: (caught.value, None)}))
    assert reason.startswith("UnpicklingError: ") and "weights_only" not in reason
