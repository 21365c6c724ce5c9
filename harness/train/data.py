"""Training data: load records, tokenise (CPT rows or SFT chats with loss masks), cache.

    CPT: documents are tokenised, joined with EOS between them and cut into seq_len rows; the
         tail shorter than seq_len is dropped, so there is no padding at all.
    SFT: each conversation (harness/train/sft.py: messages, ShareGPT or prompt/response records)
         goes through the tokenizer's chat template; labels are -100 except on assistant turns
         (their content and closing <|im_end|>). Conversations longer than seq_len are DROPPED
         with a warning that says how many (an error when all are); truncating would teach
         answers cut mid-way.

Both become a `TokenizedData`: one flat token stream with offsets, sequence i being
tokens[offsets[i]:offsets[i+1]] (a CPT row, or one conversation). How sequences become
micro-batches (padded rows, or conversations packed with per-conversation attention) is
harness/train/batches.py. Local jsonl/json files are read line by line so that an error names
the line; parquet through pyarrow; arrow, csv and hub ids through `datasets`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data.builtin import builtin_records, is_builtin
from harness.errors import InvalidInput
from harness.store import atomic_path
from harness.textio import decode_utf8, find_non_utf8
from harness.train.sft import conversation, resolve_format, sft_example

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}


@dataclass
class TokenizedData:
    tokens: np.ndarray  # [total] int32, every sequence one after the other
    labels: np.ndarray  # [total] int32, -100 where no loss is taken
    offsets: np.ndarray  # [n + 1] int64: sequence i is tokens[offsets[i]:offsets[i + 1]]
    dropped: int = 0  # SFT conversations longer than seq_len

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.tokens[start:end], self.labels[start:end]


@dataclass
class Records:
    """Rows of a data source and where each came from, for error messages ("FILE:LINE", "FILE row N")."""

    rows: list = field(default_factory=list)
    origins: list[tuple[str, str]] = field(default_factory=list)  # per row: (file, "line" | "row" | "record")
    numbers: list[int] = field(default_factory=list)  # per row: its line (jsonl) or row number

    def where(self, i: int) -> str:
        name, unit = self.origins[i]
        return f"{name}:{self.numbers[i]}" if unit == "line" else f"{name} {unit} {self.numbers[i]}"

    def extend(self, rows: list, source: str, unit: str, numbers: list[int]) -> None:
        self.rows += rows
        self.origins += [(source, unit)] * len(rows)
        self.numbers += numbers

    def head(self, n: int) -> Records:
        return Records(self.rows[:n], self.origins[:n], self.numbers[:n])


# ---------------------------------------------------------------- loading records


def load_records(cfg) -> Records:
    """Rows of a DataConfig source (builtin:NAME, a local file or folder, or a hub id)."""
    if is_builtin(cfg.path):
        rows = builtin_records(cfg.path, cfg.max_samples)
        records = Records()
        records.extend(rows, cfg.path, "record", list(range(len(rows))))
        return records
    path = Path(cfg.path)
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in FORMATS)
        if not files:
            raise InvalidInput(f"data.path: {path} holds no {'/'.join(FORMATS)} files")
        if all(p.stat().st_size == 0 for p in files):
            raise InvalidInput(f"data.path: {path} is empty (0 bytes); point data.path at a file with rows")
        kinds = {FORMATS.get(p.suffix) for p in files}
        if None in kinds or len(kinds) > 1:
            raise InvalidInput(
                f"data.path: {path}: use one format of {', '.join(FORMATS)} (found {sorted(p.suffix for p in files)})"
            )
        records = Records()
        for file in files:
            records.extend(*_read_file(file))
            if cfg.max_samples and len(records.rows) >= cfg.max_samples:
                break
    elif cfg.path.startswith(("/", ".", "~")) or Path(cfg.path).suffix in FORMATS:
        raise InvalidInput(f"data.path: {cfg.path} does not exist; give a local file or folder, or builtin:stdlib")
    else:
        records = _hub_records(cfg)
    return records.head(cfg.max_samples) if cfg.max_samples else records


def _read_file(file: Path) -> tuple[list, str, str, list[int]]:
    """(rows, file name, "line" | "row", their line or row numbers) of one local data file."""
    if file.suffix in (".jsonl", ".json"):
        try:
            text = decode_utf8(file.read_bytes(), file, "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
        except InvalidInput as exc:
            raise InvalidInput(f"data.path: {exc}") from None
        if file.suffix == ".json" and text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{file}:{exc.lineno}: not valid JSON ({exc.msg}); fix the file") from None
            return rows, str(file), "row", list(range(len(rows)))
        rows, numbers = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"{file}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); fix or remove the line"
                ) from None
            numbers.append(number)
        return rows, str(file), "line", numbers
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(file).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InvalidInput(f"{file}: cannot read parquet ({type(exc).__name__}: {exc})") from None
        return rows, str(file), "row", list(range(len(rows)))
    if file.suffix == ".csv":  # datasets would fail inside load_dataset, naming neither file nor line
        bad = find_non_utf8([file], "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8) or drop the line")
        if bad:
            raise InvalidInput(bad)
    import datasets

    try:
        ds = datasets.load_dataset(FORMATS[file.suffix], data_files=[str(file)], split="train")
    except Exception as exc:  # datasets raises many types for a malformed file
        raise InvalidInput(f"{file}: cannot read ({type(exc).__name__}: {exc})") from None
    return ds.to_list(), str(file), "row", list(range(len(ds)))


def _hub_records(cfg) -> Records:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.path, split=cfg.split)
    except Exception as exc:
        raise InvalidInput(
            f"data.path: {cfg.path!r} is not a local path and could not be loaded from the hub ({exc}); "
            "download it on a machine with network and point data.path at the files"
        ) from None
    if cfg.max_samples:
        ds = ds.select(range(min(cfg.max_samples, len(ds))))
    records = Records()
    records.extend(ds.to_list(), cfg.path, "row", list(range(len(ds))))
    return records


def _require_columns(records: Records, columns: list[str], cfg) -> None:
    if not records.rows:
        raise InvalidInput(f"data.path: {cfg.path} is empty (0 rows)")
    present = list(records.rows[0]) if isinstance(records.rows[0], dict) else []
    for column in columns:
        if column not in present:
            raise InvalidInput(
                f"data.path: {records.where(0)} has no column {column!r}; columns present: "
                f"{', '.join(present) or 'none'}; set the stage's data column option to one of them"
            )


# ---------------------------------------------------------------- tokenising


def tokenize_cpt(records: Records, tokenizer, seq_len: int, cfg) -> TokenizedData:
    """Documents joined with EOS after each, cut into seq_len rows; no padding."""
    _require_columns(records, [cfg.text_column], cfg)
    texts = []
    for i, row in enumerate(records.rows):
        text = row.get(cfg.text_column) if isinstance(row, dict) else None
        if text is not None and not isinstance(text, str):
            raise InvalidInput(  # the tokenizer would fail with a bare TypeError
                f"data.path: {records.where(i)}: {cfg.text_column!r} is {type(text).__name__} {text!r:.60}, not a "
                f"string; every document's {cfg.text_column!r} must be text (null skips the row)"
            )
        if text:
            texts.append(text)
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
    tokens = np.asarray(stream[: rows * seq_len], dtype=np.int32)
    return TokenizedData(tokens, tokens.copy(), np.arange(rows + 1, dtype=np.int64) * seq_len)


def tokenize_sft(records: Records, tokenizer, seq_len: int, cfg) -> TokenizedData:
    """Chat-template each conversation and mask all but its assistant tokens; one sequence each."""
    if not records.rows:
        raise InvalidInput(f"data.path: {cfg.path} is empty (0 rows)")
    first = records.rows[0]
    fmt = resolve_format(cfg, list(first) if isinstance(first, dict) else [], records.where(0))
    tokens, labels, offsets, dropped = [], [], [0], 0
    for i, row in enumerate(records.rows):
        where = records.where(i)
        ids, mask = sft_example(tokenizer, conversation(row, cfg, fmt, where), where=where)
        if len(ids) > seq_len:
            dropped += 1
            continue
        tokens.extend(ids)
        labels.extend(mask)
        offsets.append(len(tokens))
    n = len(records.rows)
    if len(offsets) == 1:
        raise InvalidInput(
            f"data.path: all {n} conversations of {cfg.path} are longer than seq_len={seq_len}; raise seq_len"
        )
    if dropped:
        print(
            f"warning: {cfg.path}: dropped {dropped} of {n} conversations longer than seq_len={seq_len}",
            file=sys.stderr,
        )
    return TokenizedData(
        np.asarray(tokens, dtype=np.int32),
        np.asarray(labels, dtype=np.int32),
        np.asarray(offsets, dtype=np.int64),
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


CACHE_VERSION = 2  # 2: flat token stream with offsets (1: padded [rows, seq_len] arrays)


def build_data(stage, tokenizer, cache_dir: Path | None = None) -> TokenizedData:
    """Tokenised sequences for a StageConfig, cached in cache_dir by a hash of source, options and tokenizer."""
    key = json.dumps(
        [CACHE_VERSION, stage.kind, stage.seq_len, stage.data.model_dump(), _source_key(stage.data),
         tokenizer_hash(tokenizer)]
    )  # fmt: skip
    cache = cache_dir / f"{stage.kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz" if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache) as z:
            return TokenizedData(z["tokens"], z["labels"], z["offsets"], int(z["dropped"]))
    records = load_records(stage.data)
    fn = tokenize_cpt if stage.kind == "cpt" else tokenize_sft
    data = fn(records, tokenizer, stage.seq_len, stage.data)
    if cache:
        # ranks of several nodes may share the cache folder: each writes its own temp file, renamed whole
        with atomic_path(cache, suffix=".tmp.npz") as tmp:
            np.savez(tmp, tokens=data.tokens, labels=data.labels, offsets=data.offsets, dropped=data.dropped)
    return data
