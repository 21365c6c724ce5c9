"""Resumable checkpoints (the final Hugging Face export: harness.train.export).

    checkpoints/step-000040/dcp/       torch.distributed.checkpoint: model weights and optimiser
                                       tensors, one shard file per writing rank, keyed by parameter name
    checkpoints/step-000040/state.pt   step, optimiser param groups, scheduler, data position, RNG, writer's world size

Every rank writes its shards (one process writes them all); DCP reshards on load, so a
checkpoint written by N ranks resumes on M. A checkpoint is written to `step-XXXXXX.tmp` and
rank 0 renames it after a barrier, so a kill mid-write leaves only a .tmp folder that
`latest_checkpoint` ignores. Non-tensor state is stored as plain Python types so
`torch.load(weights_only=True)` can read it, and DCP holds tensors only (it reads those with
weights_only=True too). DCP's own `.metadata` index is a plain pickle that torch unpickles without
any restriction (pytorch/pytorch#189308), so it is read here through `SafeFileSystemReader`, whose
unpickler admits only the classes DCP metadata is made of. Multi-node runs need the run directory
on a shared filesystem.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import random
import re
import shutil
import warnings
from pathlib import Path, PosixPath
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import FileSystemReader, _StorageInfo
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from harness.errors import InvalidInput, RunFailed
from harness.train.distributed import barrier, process_count, process_rank

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
STATE_FILE = "state.pt"
SHARDS_DIR = "dcp"  # torch.distributed.checkpoint folder: model weights and optimiser tensors


@contextlib.contextmanager
def _quiet_single_process():
    """DCP warns on every save/load without a process group; one process is a supported case here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


# Every global a DCP `.metadata` pickle written by save_checkpoint asks for (listed by unpickling real
# checkpoints of every backend), plus the metadata module's other classes and containers pickle may
# spell as globals. Anything else in that file was not written by DCP.
_METADATA_CLASSES = (
    "Metadata", "MetadataIndex", "StorageMeta", "ChunkStorageMetadata", "TensorProperties",
    "TensorStorageMetadata", "BytesStorageMetadata", "_MEM_FORMAT_ENCODING",
)  # fmt: skip
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    **{(dcp_metadata.__name__, name): getattr(dcp_metadata, name) for name in _METADATA_CLASSES},
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"): _StorageInfo,  # storage_data values
    ("torch", "Size"): torch.Size,
    ("torch.serialization", "_get_layout"): torch.serialization._get_layout,  # how torch.layout pickles
    ("pathlib", "PosixPath"): PosixPath,  # storage_meta.checkpoint_id
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles a DCP index, refusing every global but DCP's metadata types (a planted file runs nothing)."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is not None:
            return found
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise InvalidInput(
            f"{self.path}: refused to load {module}.{name}: a checkpoint index holds only DCP metadata, so this "
            f"file was altered or not written by the harness; delete {Path(self.path).parent.parent} "
            "to resume from the previous checkpoint"
        )


class SafeFileSystemReader(FileSystemReader):
    """torch's FileSystemReader with a restricted unpickler for `.metadata` (pytorch/pytorch#189308)."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        """FileSystemReader.read_metadata (torch 2.13) with `_MetadataUnpickler` in place of pickle.load.

        A missing file raises OSError as upstream does (DCP then tries the per-rank index); a file
        that does not unpickle to DCP Metadata raises InvalidInput naming it.
        """
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as metadata_file:
            try:
                metadata = _MetadataUnpickler(metadata_file, path).load()
            except InvalidInput:
                raise
            except Exception as exc:  # torn file: EOFError, UnpicklingError, ValueError, ...
                raise InvalidInput(
                    f"{path}: unreadable checkpoint index ({type(exc).__name__}: {exc}); "
                    f"delete {Path(path).parent.parent} to resume from the previous checkpoint"
                ) from None
        if not isinstance(metadata, Metadata):
            raise InvalidInput(
                f"{path}: holds a {type(metadata).__name__}, not DCP Metadata; "
                f"delete {Path(path).parent.parent} to resume from the previous checkpoint"
            )
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def _raise_interrupt(exc: CheckpointException) -> None:
    """Re-raise a Ctrl-C or SIGTERM that DCP wrapped (on any rank) as the interrupt it was: the run is
    then recorded as interrupted, not as failed or as holding unreadable shards."""
    for failure, _ in (exc.failures or {}).values():
        if isinstance(failure, KeyboardInterrupt):
            raise failure from None


def _cause(exc: BaseException) -> str:
    """One line saying why DCP failed: the first rank's error, without torch's `weights_only=False` advice."""
    if isinstance(exc, CheckpointException) and exc.failures:
        exc = next(iter(exc.failures.values()))[0]
    lines = [line for line in str(exc).splitlines() if line.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    if "weights_only" in first or "weights only" in first.lower():
        first = "corrupt or foreign tensor data"  # torch's text goes on to suggest an unsafe retry
    return f"{type(exc).__name__}: {first}"[:300]


def rng_state() -> dict:
    """torch / CUDA / numpy / python RNG states as tensors and plain types."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": np_state[0], "state": np_state[1].tolist(), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }  # fmt: skip


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["key"], np.array(n["state"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(folder: Path, step: int, model, optimizer, scheduler, data_position: dict) -> Path:
    """Write checkpoints/step-XXXXXX atomically (temp folder + rename); return its path.

    Collective: every rank calls it and writes its own shards; rank 0 writes state.pt and,
    after a barrier (all shards on disk), renames the folder.
    """
    final = folder / f"step-{step:06d}"
    tmp = folder / f"step-{step:06d}.tmp"
    rank0 = process_rank() == 0
    if rank0:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    # Tensors only in DCP (its loader reads tensors with weights_only=True but pickled objects
    # without); the optimiser's param groups are plain values and go into state.pt.
    try:
        with _quiet_single_process():
            dcp.save({"model": model_state, "optim": optim_state["state"]}, checkpoint_id=tmp / SHARDS_DIR)
    except CheckpointException as exc:  # a BaseException: would slip past the trainer's `except Exception`
        _raise_interrupt(exc)  # the .tmp folder stays behind, and a resume uses the previous checkpoint
        raise RunFailed(f"{tmp / SHARDS_DIR}: writing the checkpoint failed ({_cause(exc)})") from None
    if rank0:
        state = {
            "step": step,
            "world_size": process_count(),
            "optim_param_groups": optim_state["param_groups"],
            "scheduler": scheduler.state_dict(),
            "data": dict(data_position),
            "rng": rng_state(),
        }
        torch.save(state, tmp / STATE_FILE)  # written last: its presence marks a complete folder
    barrier()
    if rank0:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    barrier()
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete step-XXXXXX folder with the highest step, or None."""
    if not folder.is_dir():
        return None
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict]:
    """Restore model, optimiser, scheduler and RNG states in place; return (step, data position).

    Collective. The shards are resharded to this job's world size, whatever the writer's.
    """
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a torn or foreign file
        raise InvalidInput(
            f"{path / STATE_FILE}: unreadable checkpoint ({exc}); delete this folder to resume from an earlier one"
        ) from None
    if not (path / SHARDS_DIR).is_dir() or "optim_param_groups" not in state:
        raise InvalidInput(
            f"{path}: no {SHARDS_DIR}/ folder (a checkpoint from an older harness); delete it to restart the run"
        )
    reader = SafeFileSystemReader(path / SHARDS_DIR)
    fix = f"delete {path} to resume from the previous checkpoint"
    try:
        # Read (and vet) the index before DCP does: DCP hides a first failure behind a retry of a
        # per-rank index and reports only that the retry failed.
        reader.read_metadata()
    except OSError as exc:
        raise InvalidInput(f"{path / SHARDS_DIR}: no readable checkpoint index ({exc.strerror}); {fix}") from None
    model_state, optim_state = get_state_dict(model, optimizer)
    loaded = {"model": model_state, "optim": optim_state["state"]}
    try:
        with _quiet_single_process():
            dcp.load(loaded, storage_reader=reader)
    except (CheckpointException, Exception) as exc:  # CheckpointException is a BaseException
        if isinstance(exc, CheckpointException):
            _raise_interrupt(exc)
        raise InvalidInput(f"{path}: its {SHARDS_DIR}/ shards are unreadable ({_cause(exc)}); {fix}") from None
    optim_state = {"state": loaded["optim"], "param_groups": state["optim_param_groups"]}
    set_state_dict(model, optimizer, model_state_dict=loaded["model"], optim_state_dict=optim_state)
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"]), state["data"]
