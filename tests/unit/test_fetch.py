import io
import tarfile

import pytest

from symbiotic.data import fetch
from symbiotic.errors import UserError


def test_missing_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="nowhere/ptb does not exist .* SYMBIOTIC_DATA"):
        fetch.locate("ptb", None, tmp_path / "dl")


def test_param_wins_over_env(tmp_path, monkeypatch):
    (tmp_path / "mine" / "ptb").mkdir(parents=True)
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "other"))
    assert fetch.locate("ptb", str(tmp_path / "mine"), tmp_path / "dl") == tmp_path / "mine" / "ptb"


def test_checksum_mismatch_names_file_and_both_sums(tiny_ptb):
    path = tiny_ptb["folder"] / "ptb.valid.txt"
    sums = fetch.read_sums(tiny_ptb["sums"])
    before = path.read_bytes()
    path.write_text("tampered\n")
    with pytest.raises(UserError) as err:
        fetch.verify(tiny_ptb["folder"], sums)
    message = str(err.value)
    assert "ptb.valid.txt" in message and sums["ptb.valid.txt"] in message
    assert fetch.sha256(path) in message
    path.write_bytes(before)


def test_missing_file_is_named(tiny_ptb):
    (tiny_ptb["folder"] / "ptb.test.txt").unlink()
    with pytest.raises(UserError, match="ptb.test.txt is missing"):
        fetch.verify(tiny_ptb["folder"], fetch.read_sums(tiny_ptb["sums"]))


def _tarball(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_download_extracts_only_the_task_files(tmp_path, monkeypatch):
    # A file:// URL stands in for the canonical address: the same code path, no network.
    archive = tmp_path / "simple-examples.tgz"
    _tarball(archive, {"./simple-examples/data/ptb.train.txt": b"a b\n",
                       "./simple-examples/models/big.bin": b"x"})
    monkeypatch.setitem(fetch.ARCHIVES, "ptb",
                        fetch.Archive(archive.as_uri(), "simple-examples/data/"))
    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    folder = fetch.locate("ptb", None, tmp_path / "dl")
    assert (folder / "ptb.train.txt").read_bytes() == b"a b\n"
    assert not (folder / "big.bin").exists()
    archive.unlink()  # a second call reuses the extracted copy
    assert fetch.locate("ptb", None, tmp_path / "dl") == folder


def test_failed_download_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(fetch.ARCHIVES, "ptb", fetch.Archive((tmp_path / "absent.tgz").as_uri(), ""))
    with pytest.raises(UserError, match="could not download .* set SYMBIOTIC_DATA"):
        fetch.download("ptb", tmp_path / "dl")
    assert not list((tmp_path / "dl").glob("*.part"))
