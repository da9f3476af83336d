"""The example task of the README's "Your own task": PTB read as characters, scored in bits."""

import math

import pytest

from symbiotic.errors import UserError
from symbiotic.tasks import task_class, task_module
from symbiotic.tasks.ptb_char_prepare import CharPrepareConfig, prepare, symbols


def test_words_become_symbols_with_word_boundaries_and_whole_unk_and_eos():
    words = ["the", "<unk>", "cat", "<eos>", "a", "<eos>"]
    assert symbols(words) == ["t", "h", "e", "_", "<unk>", "_", "c", "a", "t", "<eos>", "a", "<eos>"]


def _ptb(folder, train, valid="ab\n", test="ba\n"):
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"ptb.{split}.txt").write_text(text)


def test_prepare_writes_ids_and_the_symbol_list(tmp_path):
    _ptb(tmp_path, "ab ab\nba\n")
    out = tmp_path / "out"
    out.mkdir()
    result = prepare(tmp_path, CharPrepareConfig(vocab_size=49), out)
    vocab = (out / "vocab.txt").read_text().split()
    assert set(vocab) == {"a", "b", "_", "<eos>"} and result["vocab_size"] == 4
    assert result["train_chars"] == len("ab_ab") + 1 + len("ba") + 1


def test_prepare_refuses_more_symbols_than_the_param_allows(tmp_path):
    _ptb(tmp_path, "abc\n")
    with pytest.raises(UserError, match="more than prepare.ptb_char.vocab_size") as info:
        prepare(tmp_path, CharPrepareConfig(vocab_size=3), tmp_path)
    assert "raise prepare.ptb_char.vocab_size to 4" in info.value.fix


def test_prepare_refuses_test_symbols_the_training_text_lacks(tmp_path):
    _ptb(tmp_path, "ab\n", test="abz\n")
    with pytest.raises(UserError, match=r"symbols \['z'\]"):
        prepare(tmp_path, CharPrepareConfig(), tmp_path)


def test_the_score_is_bits_per_symbol_lower_is_better():
    cls = task_class("ptb_char")
    assert cls.metric.name == "bpc" and cls.metric.lower_is_better
    assert cls.from_nll(math.log(2) * 10, 10) == pytest.approx(1.0)
    assert task_module("ptb_char").TrainConfig is task_module("ptb").TrainConfig
