"""The SFT data formats people bring (committed fixtures under tests/fixtures/train), and bad records
refused with the file, the line or row, and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import InvalidInput
from harness.suite import DataConfig
from harness.train.data import load_records, tokenize_sft
from harness.train.sft import IGNORE

FIXTURES = Path(__file__).parents[1] / "fixtures" / "train"


def _trained(tokenizer, data) -> list[str]:
    """The trained text of each conversation (labels != -100), decoded."""
    out = []
    for i in range(len(data)):
        tokens, labels = data.sequence(i)
        out.append(tokenizer.decode(tokens[labels != IGNORE].tolist()))
    return out


def _load(cfg: DataConfig, tokenizer, seq_len: int = 256):
    return tokenize_sft(load_records(cfg), tokenizer, seq_len, cfg)


def test_openai_messages(tiny_tokenizer):
    data = _load(DataConfig(path=str(FIXTURES / "messages.jsonl")), tiny_tokenizer)
    assert _trained(tiny_tokenizer, data) == ["2<|im_end|>", "3<|im_end|>4<|im_end|>"]


def test_sharegpt_conversations_map_llama_factory_roles(tiny_tokenizer):
    data = _load(DataConfig(path=str(FIXTURES / "sharegpt.jsonl")), tiny_tokenizer)  # format picked by column
    trained = _trained(tiny_tokenizer, data)
    assert trained[0] == "5<|im_end|>" and trained[1] == "7<|im_end|>11<|im_end|>"
    # function_call is the assistant's turn (trained), observation the tool's answer (not trained)
    assert trained[2] == '{"name": "weather", "city": "Paris"}<|im_end|>Clear.<|im_end|>'
    tokens, _ = data.sequence(2)
    assert '<|im_start|>tool\n{"sky": "clear"}' in tiny_tokenizer.decode(tokens.tolist())


def test_verl_single_turn_parquet_with_dict_valued_columns(tiny_tokenizer):
    cfg = DataConfig(path=str(FIXTURES / "verl_sft.parquet"), prompt_column="extra_info",
                     response_column="extra_info", prompt_dict_keys=["question"], response_dict_keys=["answer"])  # fmt: skip
    data = _load(cfg, tiny_tokenizer)
    assert _trained(tiny_tokenizer, data) == ["8<|im_end|>", "7<|im_end|>"]
    tokens, _ = data.sequence(0)
    assert "<|im_start|>user\nWhat is 4 + 4?<|im_end|>" in tiny_tokenizer.decode(tokens.tolist())


def test_verl_prompt_given_as_a_chat_is_the_conversation_before_the_response(tiny_tokenizer):
    cfg = DataConfig(
        path=str(FIXTURES / "verl_chat_prompt.parquet"), prompt_column="prompt", response_column="response"
    )
    data = _load(cfg, tiny_tokenizer)
    tokens, _ = data.sequence(0)
    assert "<|im_start|>system\nBe brief.<|im_end|>" in tiny_tokenizer.decode(tokens.tolist())
    assert _trained(tiny_tokenizer, data) == ["9<|im_end|>"]


GOOD = {"messages": [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2"}]}
BAD_RECORDS = {
    "unknown role": ({"messages": [{"role": "wizard", "content": "hi"}, GOOD["messages"][1]]},
                     "messages[0].role: unknown role 'wizard'"),
    "no assistant turn": ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn to train on"),
    "empty content": ({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "  "}]},
                      "messages[1].content: empty content"),
    "null content": ({"messages": [{"role": "user", "content": None}, GOOD["messages"][1]]},
                     "messages[0].content: expected a string, got null"),
    "content not a string": ({"messages": [{"role": "user", "content": 3}, GOOD["messages"][1]]},
                             "messages[0].content: expected a string, got int"),
    "messages not a list": ({"messages": "hello"}, "messages: expected a non-empty list of turns, got str"),
    "a turn not an object": ({"messages": ["hello", GOOD["messages"][1]]}, "messages[0]: expected an object"),
    "assistant first": ({"messages": [GOOD["messages"][1], GOOD["messages"][0]]}, "starts with an assistant turn"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_RECORDS)
def test_a_bad_record_is_named_by_file_line_and_field(case, tmp_path, tiny_tokenizer):
    record, message = BAD_RECORDS[case]
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(record) + "\n")  # line 3: a blank line is skipped
    with pytest.raises(InvalidInput) as err:
        _load(DataConfig(path=str(path)), tiny_tokenizer)
    assert str(err.value).startswith(f"{path}:3: ") and message in str(err.value)


def test_a_sharegpt_record_with_an_unknown_speaker_is_named(tmp_path, tiny_tokenizer):
    path = tmp_path / "sg.jsonl"
    path.write_text(json.dumps({"conversations": [{"from": "narrator", "value": "x"}]}) + "\n")
    with pytest.raises(InvalidInput, match=r"sg\.jsonl:1: conversations\[0\]\.from: unknown role 'narrator'"):
        _load(DataConfig(path=str(path), format="sharegpt"), tiny_tokenizer)


def test_a_broken_json_line_is_named_by_its_line(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"messages": [\n')
    with pytest.raises(InvalidInput, match=r"chats\.jsonl:2: not valid JSON"):
        load_records(DataConfig(path=str(path)))


def test_a_file_that_is_not_utf8_is_named_by_its_line(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"text": "caf\xe9"}\n')
    with pytest.raises(InvalidInput, match=r"chats\.jsonl:2: not UTF-8 text"):
        load_records(DataConfig(path=str(path)))


def test_a_dict_key_path_that_is_missing_is_named(tiny_tokenizer):
    cfg = DataConfig(path=str(FIXTURES / "verl_sft.parquet"), prompt_column="extra_info",
                     response_column="extra_info", prompt_dict_keys=["query"], response_dict_keys=["answer"])  # fmt: skip
    with pytest.raises(InvalidInput, match=r"verl_sft\.parquet row 0: extra_info: expected an object with key 'query'"):
        _load(cfg, tiny_tokenizer)


def test_no_known_format_names_the_columns_and_the_fix(tmp_path, tiny_tokenizer):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"dialogue": []}) + "\n")
    with pytest.raises(InvalidInput, match="columns present: dialogue; set data.format"):
        _load(DataConfig(path=str(path)), tiny_tokenizer)
