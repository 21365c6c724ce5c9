"""`builtin:tiny-bpe`: a small byte-level BPE tokenizer trained locally, once, and cached.

Trained with the `tokenizers` library on the first files of the standard-library corpus plus
arithmetic chats, so the smoke suite needs no download. The cache folder is keyed by a hash of
everything that determines the result (corpus file list and sizes, arithmetic text, vocabulary
size, special tokens, library version), so a change retrains and an unchanged setup never does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.data import arith, stdlib

VOCAB_SIZE = 4096
# How Qwen2's tokenizer splits text before byte-level BPE (single digits); the tiny BPE trains with
# it and harness.train.tokenizer rebuilds Qwen's tokenizer with it.
QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CORPUS_FILES = 250  # first N stdlib files: enough text for a 4k vocabulary, trains in a few seconds
ARITH_CHATS = 2000
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]


def cache_root() -> Path:
    """~/.cache/harness, or $HARNESS_CACHE when set (tests point it at a temporary folder)."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def _corpus_files() -> list[Path]:
    return stdlib.stdlib_files(CORPUS_FILES)


def _arith_text() -> list[str]:
    # Role names included so ChatML's "user"/"assistant" headers become single tokens.
    return [f"{m['role']}\n{m['content']}\n" for r in arith.sft_records(ARITH_CHATS) for m in r["messages"]]


def corpus_key() -> str:
    """Content hash of the training setup; names the cache folder."""
    import tokenizers

    root = stdlib.stdlib_root()
    blob = {
        "files": [(p.relative_to(root).as_posix(), p.stat().st_size) for p in _corpus_files()],
        "arith": hashlib.sha256("\n".join(_arith_text()).encode()).hexdigest(),
        "vocab": VOCAB_SIZE,
        "specials": SPECIAL_TOKENS,
        "tokenizers": tokenizers.__version__,
        "pre_tokenizer": "qwen2-regex+nfc",
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def train_tiny_bpe():
    """Train the byte-level BPE from scratch and return a `tokenizers.Tokenizer`.

    It splits text exactly as Qwen2's tokenizer does (NFC, Qwen's regex with single digits,
    then byte-level): a checkpoint whose config says qwen2 is reloaded by AutoTokenizer as a
    Qwen2Tokenizer, which imposes that pre-tokenizer, so any other split would change the ids
    between training and evaluation.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )

    def texts():
        for path in _corpus_files():
            yield path.read_text(encoding="utf-8", errors="replace")
        yield from _arith_text()

    tok.train_from_iterator(texts(), trainer=trainer)
    return tok


def tiny_bpe_file() -> Path:
    """Path of the cached tokenizer.json, training it first if this setup has not been trained."""
    folder = cache_root() / f"tiny-bpe-{corpus_key()}"
    path = folder / "tokenizer.json"
    if not path.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tiny-bpe-"))
        try:
            train_tiny_bpe().save(str(tmp / "tokenizer.json"))
            try:
                tmp.rename(folder)  # atomic; loses harmlessly to a concurrent trainer
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path
