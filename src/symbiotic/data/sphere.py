"""Reading NIST SPHERE audio (AN4's format) with soundfile, checked against its header.

soundfile (libsndfile) decodes the PCM. The header is parsed here too, because
libsndfile happily returns the samples of a truncated file; comparing the
header's ``sample_count`` with what is on disk turns that into a clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from symbiotic.errors import UserError

MAGIC = b"NIST_1A\n"


def read_header(path: Path) -> dict[str, int | str]:
    """The header fields (``sample_count``, ``sample_rate``, ...) and ``header_bytes``."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if not head.startswith(MAGIC):
        raise _unreadable(path, "not a NIST SPHERE file")
    try:
        size = int(head[8:16].strip())
        fields: dict[str, int | str] = {"header_bytes": size}
        for line in head[16:size].decode("ascii").splitlines():
            if line.strip() == "end_head":
                break
            parts = line.split(maxsplit=2)
            if len(parts) == 3:
                name, kind, value = parts
                fields[name] = int(value) if kind == "-i" else value
    except (ValueError, UnicodeDecodeError):
        raise _unreadable(path, "its header is malformed") from None
    return fields


def read_sphere(path: Path) -> tuple[np.ndarray, int]:
    """Samples (int16, mono) and sample rate; a truncated or unreadable file is a UserError."""
    header = read_header(path)
    count = int(header.get("sample_count", -1))
    width = int(header.get("sample_n_bytes", 2))
    expected = int(header["header_bytes"]) + count * width
    actual = path.stat().st_size
    if count < 0 or actual < expected:
        raise _unreadable(path, f"truncated: {actual} bytes on disk, header promises {expected}")
    try:
        samples, rate = soundfile.read(str(path), dtype="int16")
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise _unreadable(path, f"soundfile cannot decode it ({exc})") from None
    if samples.ndim != 1 or len(samples) != count:
        raise _unreadable(path, f"decoded {len(samples)} samples, header promises {count}")
    return samples, rate


def write_sphere(path: Path, samples: np.ndarray, rate: int) -> None:
    """Write 16-bit mono PCM with a 1,024-byte NIST header (for tests and tools)."""
    samples = np.asarray(samples, dtype="<i2")
    lines = ["NIST_1A", "   1024", f"sample_count -i {len(samples)}", f"sample_rate -i {rate}",
             "sample_n_bytes -i 2", "sample_byte_format -s2 01", "channel_count -i 1",
             "sample_coding -s3 pcm", "end_head"]
    header = ("\n".join(lines) + "\n").encode("ascii").ljust(1024, b" ")
    path.write_bytes(header + samples.tobytes())


def _unreadable(path: Path, why: str) -> UserError:
    return UserError(f"audio file {path} is unreadable: {why}",
                     "replace it with the file from the canonical AN4 archive")
