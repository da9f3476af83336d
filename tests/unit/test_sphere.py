import numpy as np
import pytest

from symbiotic.data.sphere import read_header, read_sphere, write_sphere
from symbiotic.errors import UserError


def test_round_trip(tmp_path):
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    path = tmp_path / "x.sph"
    write_sphere(path, samples, 16000)
    assert path.stat().st_size == 1024 + 2 * 6  # header + 16-bit PCM
    back, rate = read_sphere(path)
    assert rate == 16000 and back.dtype == np.int16
    assert np.array_equal(back, samples)
    assert read_header(path)["sample_count"] == 6


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "cut.sph"
    write_sphere(path, np.zeros(100, dtype=np.int16), 16000)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match=r"cut\.sph is unreadable: truncated"):
        read_sphere(path)


def test_not_sphere_is_named(tmp_path):
    path = tmp_path / "junk.sph"
    path.write_bytes(b"RIFF" + bytes(2000))
    with pytest.raises(UserError, match="junk.sph is unreadable: not a NIST SPHERE file"):
        read_sphere(path)
