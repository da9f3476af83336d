import pytest
import torch

from symbiotic.data import ptb
from symbiotic.errors import UserError


def test_words_get_one_eos_per_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(" a b \nc\n")
    assert ptb.read_words(path) == ["a", "b", "<eos>", "c", "<eos>"]


def test_vocab_is_by_frequency_then_alphabetical():
    words = "b a b c <eos> b a <eos>".split()
    # counts: b 3, a 2, <eos> 2, c 1 -> ties (a, <eos>) broken alphabetically
    assert ptb.build_vocab(words, 10) == ["b", "<eos>", "a", "c"]


def test_rare_words_fold_into_unk():
    words = "x x x y y <unk> z".split()
    vocab = ptb.build_vocab(words, 3)  # x, y kept; <unk> takes the last slot
    assert vocab == ["x", "y", "<unk>"]
    assert ptb.encode(["z", "x"], vocab).tolist() == [2, 0]


def test_encode_without_unk_is_an_error():
    with pytest.raises(UserError, match="not in the vocabulary"):
        ptb.encode(["q"], ["a"])


def test_prepare_tiny_corpus(tiny_ptb):
    cfg = ptb.PTBPrepareConfig(expected_tokens=(14, 4, 4))
    tokens, vocab, metrics = ptb.prepare(tiny_ptb["folder"], cfg)
    assert [tokens[s].numel() for s in ptb.SPLITS] == [14, 4, 4]
    assert tokens["train"].dtype == torch.int64
    assert vocab[0] == "<eos>"  # 3 <eos> and 3 "the": tie broken by "<" < "t"
    assert metrics["vocab_size"] == len(vocab) == 9
    # "a" of the test split is unseen: it becomes <unk>
    assert vocab[tokens["test"][0]] == "<unk>"


def test_wrong_count_is_named(tiny_ptb):
    cfg = ptb.PTBPrepareConfig(expected_tokens=(15, 4, 4))
    with pytest.raises(UserError, match="ptb.train.txt has 14 tokens, expected 15"):
        ptb.prepare(tiny_ptb["folder"], cfg)
