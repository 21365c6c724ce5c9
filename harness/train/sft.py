"""SFT records -> one chat each -> token ids and labels that train only on the assistant's turns.

Formats (`data.format`, "auto" picks by the columns present):

    messages         OpenAI-style `messages`: [{"role": "system"|"user"|"assistant"|"tool", "content": str}]
    sharegpt         LLaMA-Factory's ShareGPT: `conversations`: [{"from": "human"|"gpt"|"system"|"tool"|
                     "observation"|"function_call", "value": str}]
    prompt_response  one user turn and one assistant turn from two columns; verl's single-turn parquet
                     follows `prompt_dict_keys` / `response_dict_keys` into dict-valued columns, and a
                     prompt that is itself a list of messages is taken as the chat before the response

A bad record (unknown role, no assistant turn, empty or non-string content, wrong type) is an
InvalidInput naming the file, the line or row, and the field.

The chat template renders the conversation; an assistant turn's characters are those between the
rendering of the chat before it (with the generation prompt `<|im_start|>assistant\\n`) and the
rendering that includes it, minus trailing whitespace. So labels cover the reply and its closing
`<|im_end|>`, the token that teaches the model to stop, and nothing the user or system wrote.
Works for any template whose renderings of successive prefixes extend each other (ChatML does).
"""

from __future__ import annotations

from typing import Any

from harness.errors import InvalidInput

IGNORE = -100
ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {  # LLaMA-Factory's default tags
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
    "tool": "tool", "observation": "tool", "function_call": "assistant",
}  # fmt: skip
FORMATS = ("messages", "sharegpt", "prompt_response")


def resolve_format(cfg, columns: list[str], where: str) -> str:
    """The record format of a DataConfig, picking by the columns present when it says "auto"."""
    if cfg.format != "auto":
        return cfg.format
    if cfg.prompt_column or cfg.response_column:
        return "prompt_response"
    if cfg.messages_column in columns:
        return "messages"
    if cfg.conversations_column in columns:
        return "sharegpt"
    raise InvalidInput(
        f"{where}: no column {cfg.messages_column!r} (messages) or {cfg.conversations_column!r} (ShareGPT); "
        f"columns present: {', '.join(columns)}; set data.format and the column names "
        "(messages_column, conversations_column, or prompt_column + response_column)"
    )


def conversation(record: dict, cfg, fmt: str, where: str) -> list[dict]:
    """The record as a validated chat of {"role", "content"} turns."""
    if not isinstance(record, dict):
        raise InvalidInput(f"{where}: a record must be an object, got {type(record).__name__}")
    if fmt == "messages":
        chat = _turns(_column(record, cfg.messages_column, where), "role", "content", None, cfg.messages_column, where)
    elif fmt == "sharegpt":
        column = cfg.conversations_column
        chat = _turns(_column(record, column, where), "from", "value", SHAREGPT_ROLES, column, where)
    else:
        chat = _prompt_response(record, cfg, where)
    _check_chat(chat, where)
    return chat


def _column(record: dict, name: str, where: str) -> Any:
    if name not in record:
        raise InvalidInput(f"{where}: no field {name!r}; it has {', '.join(map(str, record))}")
    return record[name]


def _turns(raw: Any, role_key: str, content_key: str, roles: dict | None, field: str, where: str) -> list[dict]:
    if hasattr(raw, "tolist"):  # a parquet list column arrives as a numpy array
        raw = raw.tolist()
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{where}: {field}: expected a non-empty list of turns, got {type(raw).__name__}")
    chat = []
    for i, turn in enumerate(raw):
        at = f"{field}[{i}]"
        if not isinstance(turn, dict):
            raise InvalidInput(f"{where}: {at}: expected an object with {role_key!r} and {content_key!r}")
        role = turn.get(role_key)
        known = roles or {r: r for r in ROLES}
        if role not in known:
            raise InvalidInput(
                f"{where}: {at}.{role_key}: unknown role {role!r}; known: {', '.join(known)} "
                "(fix the record, or pick the data.format whose roles it uses)"
            )
        chat.append({"role": known[role], "content": _text(turn.get(content_key), f"{at}.{content_key}", where)})
    return chat


def _text(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        raise InvalidInput(f"{where}: {field}: expected a string, got {got}")
    if not value.strip():
        raise InvalidInput(f"{where}: {field}: empty content; remove the turn or the record")
    return value


def _follow(record: dict, column: str | None, keys: list[str], field: str, where: str) -> Any:
    value = _column(record, column, where)
    path = column
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise InvalidInput(f"{where}: {path}: expected an object with key {key!r} (data.{field}_dict_keys)")
        value, path = value[key], f"{path}.{key}"
    return value, path


def _prompt_response(record: dict, cfg, where: str) -> list[dict]:
    if not (cfg.prompt_column and cfg.response_column):
        raise InvalidInput(f"{where}: data.format 'prompt_response' needs both prompt_column and response_column")
    prompt, prompt_at = _follow(record, cfg.prompt_column, cfg.prompt_dict_keys, "prompt", where)
    response, response_at = _follow(record, cfg.response_column, cfg.response_dict_keys, "response", where)
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    before = (
        _turns(prompt, "role", "content", None, prompt_at, where)
        if isinstance(prompt, list)  # verl's RL-style prompt: the chat so far
        else [{"role": "user", "content": _text(prompt, prompt_at, where)}]
    )
    return [*before, {"role": "assistant", "content": _text(response, response_at, where)}]


def _check_chat(chat: list[dict], where: str) -> None:
    if not any(turn["role"] == "assistant" for turn in chat):
        raise InvalidInput(f"{where}: no assistant turn to train on")
    first = next(turn["role"] for turn in chat if turn["role"] != "system")
    if first == "assistant":
        raise InvalidInput(f"{where}: the conversation starts with an assistant turn; it needs a user turn first")


def _render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict], where: str) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the [start, end) character spans of each assistant turn."""
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in messages
    ):
        raise InvalidInput(f"{where}: messages must be a list of {{'role', 'content'}} objects")
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if i == 0:
            raise InvalidInput(f"{where}: the conversation starts with an assistant turn; it needs a user turn first")
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1])
        if not (upto.startswith(before) and text.startswith(upto)):
            raise InvalidInput(
                f"{where}: the tokenizer's chat template does not render prefixes consistently; use a ChatML template"
            )
        spans.append((len(before), len(upto.rstrip())))
    if not spans:
        raise InvalidInput(f"{where}: no assistant turn to train on")
    return text, spans


def sft_example(tokenizer, messages: list[dict], where: str = "conversation") -> tuple[list[int], list[int]]:
    """(input_ids, labels) with labels = IGNORE outside assistant turns."""
    text, spans = assistant_spans(tokenizer, messages, where)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [
        token if any(start <= s < end for start, end in spans) else IGNORE
        for token, (s, _) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return ids, labels
