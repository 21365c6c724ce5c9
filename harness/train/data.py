"""Training data: load records, tokenise (CPT packing or SFT chat masking), batch in a seeded order.

    CPT: documents are tokenised, joined with EOS between them and cut into seq_len rows; the
         tail shorter than seq_len is dropped, so there is no padding at all.
    SFT: each conversation goes through the tokenizer's chat template; labels are -100 except on
         assistant turns (their content and closing <|im_end|>); rows are right-padded to seq_len.
         Conversations longer than seq_len are DROPPED with a warning that says how many (an
         error when all are); truncating would teach answers cut mid-way.

Right padding needs no attention mask: with causal attention a real token never sees a later pad.
The order is a permutation per epoch seeded by (seed, epoch), identical for every arm, and the
position (epoch, index) is saved in checkpoints so a resumed run reads the same batches.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.data.builtin import builtin_records, is_builtin
from harness.errors import InvalidInput
from harness.textio import find_non_utf8
from harness.train.sft import sft_example

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}


@dataclass
class TokenizedData:
    input_ids: np.ndarray  # [rows, seq_len] int32
    labels: np.ndarray  # [rows, seq_len] int32, -100 where no loss is taken
    lengths: np.ndarray  # [rows] int32, real (non-pad) tokens per row
    dropped: int = 0  # SFT conversations longer than seq_len

    def __len__(self) -> int:
        return len(self.input_ids)


# ---------------------------------------------------------------- loading records


def load_records(cfg) -> list[dict]:
    """Rows of a DataConfig source (builtin:NAME, a local file or folder, or a hub id) as dicts."""
    if is_builtin(cfg.path):
        return builtin_records(cfg.path, cfg.max_samples)
    import datasets

    path = Path(cfg.path)
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in FORMATS)
        if not files:
            raise InvalidInput(f"data.path: {path} holds no {'/'.join(FORMATS)} files")
        if all(p.stat().st_size == 0 for p in files):  # datasets fails on these with a bare StopIteration
            raise InvalidInput(f"data.path: {path} is empty (0 bytes); point data.path at a file with rows")
        kinds = {FORMATS.get(p.suffix) for p in files}
        if None in kinds or len(kinds) > 1:
            raise InvalidInput(
                f"data.path: {path}: use one format of {', '.join(FORMATS)} (found {sorted(p.suffix for p in files)})"
            )
        try:
            ds = datasets.load_dataset(kinds.pop(), data_files=[str(p) for p in files], split="train")
        except Exception as exc:  # datasets raises many types for a malformed file
            raise InvalidInput(f"data.path: cannot read {path} ({type(exc).__name__}: {exc})") from None
    elif cfg.path.startswith(("/", ".", "~")) or Path(cfg.path).suffix in FORMATS:
        raise InvalidInput(f"data.path: {cfg.path} does not exist; give a local file or folder, or builtin:stdlib")
    else:
        try:
            ds = datasets.load_dataset(cfg.path, split=cfg.split)
        except Exception as exc:
            raise InvalidInput(
                f"data.path: {cfg.path!r} is not a local path and could not be loaded from the hub ({exc}); "
                "download it on a machine with network and point data.path at the files"
            ) from None
    if cfg.max_samples:
        ds = ds.select(range(min(cfg.max_samples, len(ds))))
    try:
        return ds.to_list()
    except UnicodeDecodeError:  # pyarrow keeps a JSON string that is not UTF-8 as bytes until it is read
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in FORMATS)
        found = find_non_utf8(files, "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8) or drop the line")
        raise InvalidInput(f"data.path: {found or f'{path}: not UTF-8 text'}") from None


def _require_columns(records: list[dict], columns: list[str], cfg) -> None:
    if not records:
        raise InvalidInput(f"data.path: {cfg.path} is empty (0 rows)")
    present = list(records[0])
    for column in columns:
        if column not in present:
            raise InvalidInput(
                f"data.path: {cfg.path} has no column {column!r}; columns present: {', '.join(present)}; "
                "set the stage's data column option to one of them"
            )


# ---------------------------------------------------------------- tokenising


def tokenize_cpt(records: list[dict], tokenizer, seq_len: int, cfg) -> TokenizedData:
    """Pack documents into [rows, seq_len] with EOS after each document; no padding."""
    _require_columns(records, [cfg.text_column], cfg)
    for number, record in enumerate(records, 1):
        text = record[cfg.text_column]
        if text is not None and not isinstance(text, str):  # the tokenizer would fail with a bare TypeError
            raise InvalidInput(
                f"data.path: {cfg.path} row {number}: {cfg.text_column!r} is {type(text).__name__} {text!r:.60}, "
                f"not a string; every document's {cfg.text_column!r} must be text (null skips the row)"
            )
    texts = [r[cfg.text_column] for r in records if r[cfg.text_column]]
    stream: list[int] = []
    eos = tokenizer.eos_token_id
    for start in range(0, len(texts), 256):
        for ids in tokenizer(texts[start : start + 256], add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
    rows = len(stream) // seq_len
    if rows == 0:
        raise InvalidInput(
            f"data.path: {cfg.path} has {len(stream)} tokens, fewer than one sequence of seq_len={seq_len}"
        )
    ids = np.asarray(stream[: rows * seq_len], dtype=np.int32).reshape(rows, seq_len)
    return TokenizedData(ids, ids.copy(), np.full(rows, seq_len, dtype=np.int32))


def tokenize_sft(records: list[dict], tokenizer, seq_len: int, cfg) -> TokenizedData:
    """Chat-template each conversation, mask all but assistant tokens, right-pad to seq_len."""
    if cfg.prompt_column or cfg.response_column:
        columns = [c for c in (cfg.prompt_column, cfg.response_column) if c]
        if len(columns) < 2:
            raise InvalidInput("data: set both prompt_column and response_column, or neither (to use messages)")
        _require_columns(records, columns, cfg)
        chats = [
            [
                {"role": "user", "content": r[cfg.prompt_column]},
                {"role": "assistant", "content": r[cfg.response_column]},
            ]
            for r in records
        ]
    else:
        _require_columns(records, [cfg.messages_column], cfg)
        chats = [r[cfg.messages_column] for r in records]
    ids_rows, label_rows, lengths, dropped = [], [], [], 0
    for number, messages in enumerate(chats):
        ids, labels = sft_example(tokenizer, messages, where=f"{cfg.path} row {number}")
        if len(ids) > seq_len:
            dropped += 1
            continue
        pad = seq_len - len(ids)
        lengths.append(len(ids))
        ids_rows.append(ids + [tokenizer.pad_token_id] * pad)
        label_rows.append(labels + [-100] * pad)
    if not ids_rows:
        raise InvalidInput(
            f"data.path: all {len(chats)} conversations of {cfg.path} are longer than seq_len={seq_len}; raise seq_len"
        )
    if dropped:
        print(
            f"warning: {cfg.path}: dropped {dropped} of {len(chats)} conversations longer than seq_len={seq_len}",
            file=sys.stderr,
        )
    return TokenizedData(
        np.asarray(ids_rows, dtype=np.int32),
        np.asarray(label_rows, dtype=np.int32),
        np.asarray(lengths, dtype=np.int32),
        dropped,
    )


def tokenizer_hash(tokenizer) -> str:
    blob = tokenizer.backend_tokenizer.to_str() + (tokenizer.chat_template or "")
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _source_key(cfg) -> object:
    if is_builtin(cfg.path):
        return [cfg.path, sys.version]  # stdlib text depends on the Python version
    path = Path(cfg.path)
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return cfg.path


def build_data(stage, tokenizer, cache_dir: Path | None = None) -> TokenizedData:
    """Tokenised rows for a StageConfig, cached in cache_dir by a hash of source, options and tokenizer."""
    key = json.dumps(
        [stage.kind, stage.seq_len, stage.data.model_dump(), _source_key(stage.data), tokenizer_hash(tokenizer)]
    )
    cache = cache_dir / f"{stage.kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz" if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache) as z:
            return TokenizedData(z["input_ids"], z["labels"], z["lengths"], int(z["dropped"]))
    records = load_records(stage.data)
    fn = tokenize_cpt if stage.kind == "cpt" else tokenize_sft
    data = fn(records, tokenizer, stage.seq_len, stage.data)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{id(data)}.tmp.npz")
        np.savez(tmp, input_ids=data.input_ids, labels=data.labels, lengths=data.lengths, dropped=data.dropped)
        tmp.replace(cache)
    return data


# ---------------------------------------------------------------- batching


class Batches:
    """Global batches in a seeded order: a new permutation of the rows every epoch."""

    def __init__(self, data: TokenizedData, global_batch_size: int, seed: int, position: dict | None = None):
        self.data, self.gbs, self.seed = data, global_batch_size, seed
        self.epoch, self.index = (position["epoch"], position["index"]) if position else (0, 0)
        self._order = self._permutation(self.epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.data))

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def next(self) -> dict[str, torch.Tensor]:
        """The next global batch: input_ids, labels [global_batch_size, seq_len] and lengths (int64)."""
        rows = []
        for _ in range(self.gbs):
            if self.index >= len(self._order):
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            rows.append(self._order[self.index])
            self.index += 1
        rows = np.asarray(rows)
        return {
            "input_ids": torch.from_numpy(self.data.input_ids[rows].astype(np.int64)),
            "labels": torch.from_numpy(self.data.labels[rows].astype(np.int64)),
            "lengths": torch.from_numpy(self.data.lengths[rows].astype(np.int64)),
        }


def steps_for(stage, rows: int) -> int:
    """Optimiser steps of a stage: stage.steps, or epochs x rows / global batch (rounded up)."""
    if stage.steps:
        return stage.steps
    return max(1, -(-int(stage.epochs * rows) // stage.global_batch_size))
