import json

import numpy as np
import pytest

from harness.errors import InvalidInput
from harness.suite import DataConfig, StageConfig
from harness.train.batches import Batches, steps_for
from harness.train.data import Records, TokenizedData, build_data, load_records, tokenize_cpt, tokenize_sft


def stage(path, kind="cpt", seq_len=16, **data):
    return StageConfig(
        kind=kind,
        data=DataConfig(path=str(path), **data),
        seq_len=seq_len,
        global_batch_size=4,
        micro_batch_size=2,
        steps=3,
        optim={"lr": 1e-3},
    )


def records(rows: list) -> Records:
    out = Records()
    out.extend(rows, "x.jsonl", "line", list(range(1, len(rows) + 1)))
    return out


def test_cpt_packing_puts_eos_between_documents_and_never_pads(tiny_tokenizer):
    docs = [{"text": "alpha beta"}, {"text": "gamma"}, {"text": "delta epsilon zeta"}] * 5
    data = tokenize_cpt(records(docs), tiny_tokenizer, 8, DataConfig(path="x"))
    eos = tiny_tokenizer.eos_token_id
    stream = []
    for doc in docs:
        stream += tiny_tokenizer.encode(doc["text"], add_special_tokens=False) + [eos]
    rows = len(stream) // 8
    assert len(data) == rows
    assert data.tokens.tolist() == stream[: rows * 8]  # rows are consecutive cuts of one stream
    assert (data.labels == data.tokens).all() and (data.lengths == 8).all()
    assert data.tokens.tolist().count(eos) == stream[: rows * 8].count(eos) >= 5


def test_sft_rows_are_right_padded_with_loss_only_on_assistant_tokens(tiny_tokenizer):
    rows = [{"messages": [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2"}]}]
    data = tokenize_sft(records(rows), tiny_tokenizer, 48, DataConfig(path="x"))
    unpacked = StageConfig(kind="sft", data=DataConfig(path="x"), seq_len=48, global_batch_size=1,
                           micro_batch_size=1, steps=1, optim={"lr": 1e-3}, packing=False)  # fmt: skip
    (micro,) = Batches(data, unpacked, seed=0, pad_id=tiny_tokenizer.pad_token_id).next().micro_batches[0]
    n = int(data.lengths[0])
    assert micro.input_ids.shape == (1, 48)
    assert (micro.input_ids[0, n:] == tiny_tokenizer.pad_token_id).all()
    assert (micro.labels[0, n:] == -100).all()
    trained = micro.input_ids[0][micro.labels[0] != -100].tolist()
    assert tiny_tokenizer.decode(trained) == "2<|im_end|>"


def test_sft_prompt_response_columns_work_like_messages(tiny_tokenizer):
    cfg = DataConfig(path="x", prompt_column="q", response_column="a")
    data = tokenize_sft(records([{"q": "1 + 1?", "a": "2"}]), tiny_tokenizer, 48, cfg)
    assert tiny_tokenizer.decode(data.tokens[data.labels != -100].tolist()) == "2<|im_end|>"


def test_sft_conversations_longer_than_seq_len_are_dropped_and_counted(tiny_tokenizer, capsys):
    short = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    long = {"messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "yo"}]}
    data = tokenize_sft(records([short, long, short]), tiny_tokenizer, 32, DataConfig(path="chats.jsonl"))
    assert len(data) == 2 and data.dropped == 1
    assert "dropped 1 of 3" in capsys.readouterr().err
    with pytest.raises(InvalidInput, match="all 1 conversations"):
        tokenize_sft(records([long]), tiny_tokenizer, 32, DataConfig(path="chats.jsonl"))


def test_missing_path_is_invalid_input_naming_it(tmp_path):
    with pytest.raises(InvalidInput, match=r"missing\.jsonl does not exist"):
        load_records(DataConfig(path=str(tmp_path / "missing.jsonl")))


def test_missing_column_names_the_file_the_column_and_the_columns_present(tmp_path, tiny_tokenizer):
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    with pytest.raises(InvalidInput) as err:
        build_data(stage(path), tiny_tokenizer)
    message = str(err.value)
    assert str(path) in message and "'text'" in message and "body, id" in message


def test_empty_dataset_is_invalid_input(tmp_path, tiny_tokenizer):
    path = tmp_path / "empty.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(InvalidInput, match="fewer than one sequence"):
        build_data(stage(path, seq_len=512), tiny_tokenizer)
    with pytest.raises(InvalidInput, match="is empty"):
        tokenize_cpt(records([]), tiny_tokenizer, 8, DataConfig(path=str(path)))


def test_tokenised_data_is_cached_and_reused(tmp_path, corpus, tiny_tokenizer, monkeypatch):
    first = build_data(stage(corpus), tiny_tokenizer, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("cpt-*.npz"))) == 1
    monkeypatch.setattr("harness.train.data.load_records", lambda cfg: pytest.fail("cache was not used"))
    again = build_data(stage(corpus), tiny_tokenizer, cache_dir=tmp_path)
    assert np.array_equal(first.tokens, again.tokens) and np.array_equal(first.offsets, again.offsets)


def _ids(step) -> np.ndarray:
    return np.concatenate([mb.input_ids for mb in step.micro_batches[0]])


def test_batches_follow_a_seeded_order_and_resume_from_a_saved_position(corpus, tiny_tokenizer):
    cpt = stage(corpus)
    data = build_data(cpt, tiny_tokenizer)
    a = Batches(data, cpt, seed=3)
    seen = [_ids(a.next()) for _ in range(len(data))]  # several epochs
    position = None
    b = Batches(data, cpt, seed=3)
    for i in range(len(seen)):
        if i == 5:
            position = b.position
            b = Batches(data, cpt, seed=3, position=position)
        assert (_ids(b.next()) == seen[i]).all()
    other = _ids(Batches(data, cpt, seed=4).next())
    assert not (other == seen[0]).all()


def test_epochs_convert_to_steps_rounding_up():
    s = StageConfig(
        kind="cpt",
        data=DataConfig(path="x"),
        seq_len=8,
        global_batch_size=4,
        micro_batch_size=2,
        epochs=1.5,
        optim={"lr": 1e-3},
    )
    ten_rows = TokenizedData(np.zeros(80, np.int32), np.zeros(80, np.int32), np.arange(11, dtype=np.int64) * 8)
    assert steps_for(s, ten_rows, seed=0) == 4  # 15 rows / 4 per step


def test_a_csv_corpus_line_that_is_not_utf8_is_named_by_file_and_line(tmp_path):
    corpus = tmp_path / "corpus.csv"
    corpus.write_bytes(b"text\nfine\ncaf\xe9 au lait\n")
    with pytest.raises(InvalidInput) as refused:
        load_records(DataConfig(path=str(corpus)))
    assert str(refused.value).startswith(f"{corpus}:3: not UTF-8 text (byte 0xe9 in: caf\ufffd au lait); re-encode")
