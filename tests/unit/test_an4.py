import pytest

from symbiotic.data import an4
from symbiotic.data.features import FeatureConfig
from symbiotic.errors import UserError


def test_labels_are_blank_space_apostrophe_letters():
    assert an4.LABELS[0] == "_" and len(an4.LABELS) == 29


def test_encode_decode_round_trip():
    ids = an4.encode_text("IT'S A B")
    assert ids[:3] == [an4.LABELS.index("i"), an4.LABELS.index("t"), 2]
    assert an4.decode_labels(ids) == "it's a b"


def test_bad_character_is_named():
    with pytest.raises(UserError, match="character '7'"):
        an4.encode_text("B7")


def test_transcripts_strip_sentence_tags(tmp_path):
    path = tmp_path / "t.transcription"
    path.write_text("<s> YES </s> (an251-fash-b)\nERASE C Q (an407-fcaw-b)\n")
    assert an4.read_transcripts(path) == {"an251-fash-b": "yes", "an407-fcaw-b": "erase c q"}


def test_prepare_tiny(tiny_an4):
    cfg = an4.AN4PrepareConfig(expected_utterances=(3, 1), valid_speakers=1)
    feat = FeatureConfig(n_mfcc=13, n_mels=20)
    tensors, manifest, metrics = an4.prepare(tiny_an4["folder"], cfg, feat)
    assert list(manifest.columns) == ["split", "utterance", "speaker", "seconds", "frames", "transcript"]
    train, valid = tensors["train"], tensors["valid"]
    # spk1's 0.5 s and 0.3 s train, spk2's 0.8 s is held out; 10 ms hop: 51 + 31, 81 frames
    assert train["frame_offsets"].tolist() == [0, 51, 82] and valid["features"].shape == (81, 13)
    assert an4.decode_labels(valid["labels"]) == "erase c q"
    assert (metrics["train_utterances"], metrics["valid_utterances"], metrics["test_utterances"]) == (2, 1, 1)
    assert set(manifest[manifest["split"] == "valid"]["speaker"]) == {"spk2"}


def test_held_out_speakers_spread_and_refuse_all():
    assert an4.held_out_speakers([f"s{i:02d}" for i in range(74)] * 3, 7) == [
        "s05", "s15", "s26", "s37", "s47", "s58", "s68"]
    with pytest.raises(UserError, match="valid_speakers is 2, but AN4 train has 2 speakers"):
        an4.held_out_speakers(["a", "b"], 2)


def test_transcript_without_audio_is_named(tiny_an4):
    etc = tiny_an4["folder"] / "etc" / "an4_test.transcription"
    etc.write_text(etc.read_text() + "EXTRA (an99-spk3-b)\n")
    with pytest.raises(UserError, match="an99-spk3-b .* has no audio"):
        an4.read_split(tiny_an4["folder"], "test")


def test_wrong_utterance_count(tiny_an4):
    cfg = an4.AN4PrepareConfig(expected_utterances=(948, 130))
    with pytest.raises(UserError, match="train has 3 utterances, expected 948"):
        an4.prepare(tiny_an4["folder"], cfg, FeatureConfig())
