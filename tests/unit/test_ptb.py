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


# ---- the prepared folder as PTBTask reads it ---------------------------------------------------
def _prepared(tmp_path, change=None, seal=True):
    """A tiny prepared folder (30 words, 400/100/100 tokens), changed, then sealed again with its
    manifest unless ``seal`` is False (so that what is tested is the loader's own check)."""
    from helpers import tiny_prepared_ptb
    from symbiotic.data.prepared import write_manifest

    folder = tiny_prepared_ptb(tmp_path / "ptb", tokens=400)
    if change is not None:
        change(folder)
        if seal:
            write_manifest(folder, "ptb")
    return folder


def _task(folder, **cfg):
    from symbiotic.tasks.ptb import PTBTask, TrainConfig

    return PTBTask(folder, TrainConfig(**{"batch": 4, "eval_batch": 4, "bptt": 5, **cfg}))


def _tokens(values, dtype=torch.int64):
    return lambda folder: torch.save(torch.tensor(values, dtype=dtype), folder / "train.pt")


def _vocab(text):
    return lambda folder: (folder / "vocab.txt").write_text(text)


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "train.pt").write_bytes(b"garbage"), "train.pt is unreadable"),
    (lambda f: (f / "train.pt").write_bytes((f / "train.pt").read_bytes()[:100]), "train.pt is unreadable"),
    (lambda f: torch.save({"ids": torch.zeros(3)}, f / "train.pt"), "holds a dict, not a 1-D int64"),
    (_tokens([1.0, 2.0, 3.0], torch.float32), "holds a 1-D torch.float32 tensor, not a 1-D int64"),
    (_tokens([[1, 2], [3, 4]]), "holds a 2-D torch.int64 tensor"),
    (_tokens([1, 2], torch.int32), "holds a 1-D torch.int32 tensor"),
    (_tokens([]), "train.pt holds 0 tokens: a split needs 2 or more"),
    (_tokens([3, 30, 4]), "token ids 3..30, outside the 30-word vocabulary of vocab.txt (ids 0..29)"),
    (_tokens([3, -1, 4]), "token ids -1..4, outside"),
    (_tokens([3, 4, 5, 6, 7]), "train.pt: 5 tokens make no batch of 4 streams"),
    (_vocab("a\nb\na\n"), "vocab.txt lists 'a' twice (lines 1 and 3)"),
    (_vocab("a\n\nb\n"), "line 2 of"),
    (_vocab("a\nb c\n"), "line 2 of"),
    (_vocab(""), "vocab.txt is empty"),
    (lambda f: (f / "vocab.txt").write_bytes(b"\xff\xfe\x00"), "vocab.txt is unreadable (UnicodeDecodeError)"),
    (lambda f: (f / "vocab.txt").unlink(), "lists no vocab.txt"),
])
def test_damaged_prepared_data_is_named(tmp_path, change, message):
    folder = _prepared(tmp_path, change)
    with pytest.raises(UserError) as info:
        _task(folder)
    assert message in str(info.value) and "prepare_ptb" in info.value.fix


def test_the_eval_batch_must_fit_the_valid_split(tmp_path):
    with pytest.raises(UserError, match=r"valid.pt: 100 tokens make no batch of 60 streams .*eval_batch is 60"):
        _task(_prepared(tmp_path), eval_batch=60)


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "manifest.json").unlink(), "has no manifest.json: it is incomplete or was written by an"),
    (lambda f: (f / "manifest.json").write_text("{"), "manifest.json is unreadable (JSONDecodeError)"),
    (lambda f: (f / "manifest.json").write_text("[]"), "manifest.json is not a prepared-data manifest"),
    (lambda f: (f / "vocab.txt").write_text("x\n"), "vocab.txt has 2 bytes, manifest.json records 110"),
    (lambda f: (f / "vocab.txt").write_text("w0\n" * 30 + "\n" * 20),  # same size, other bytes
     "vocab.txt differs from its SHA256 in manifest.json"),
    (lambda f: (f / "test.pt").unlink(), "test.pt is listed in manifest.json but missing"),
])
def test_a_folder_that_differs_from_its_manifest_is_refused(tmp_path, change, message):
    folder = _prepared(tmp_path, change, seal=False)
    with pytest.raises(UserError) as info:
        _task(folder)
    assert message in str(info.value) and "rerun `dvc repro prepare_ptb`" in info.value.fix


def test_the_manifest_of_another_task_or_format_is_refused(tmp_path):
    import json

    from symbiotic.data.prepared import write_manifest

    folder = _prepared(tmp_path)
    write_manifest(folder, "an4")
    with pytest.raises(UserError, match="manifest of task 'an4', not 'ptb'"):
        _task(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "task": "ptb", "format": 0}))
    with pytest.raises(UserError, match="has format 0, this code reads format 1"):
        _task(folder)


def test_a_whole_folder_loads(tmp_path):
    task = _task(_prepared(tmp_path))
    assert task.vocab == 30 and task.train.shape == (100, 4) and task.valid.shape == (25, 4)
