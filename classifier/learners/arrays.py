"""NumPy ``.npz`` payloads for model artefacts: named arrays in, bytes out, never pickle.

Strings (vocabularies) travel as one UTF-8 byte array plus offsets, so no object arrays are
needed and ``np.load(..., allow_pickle=False)`` can read everything.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from classifier.errors import ModelFormatError

Arrays = dict[str, npt.NDArray[np.generic]]


def encode_strings(strings: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Strings as (UTF-8 bytes of all of them, end offset of each)."""
    encoded = [s.encode("utf-8") for s in strings]
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return blob, offsets


def decode_strings(blob: npt.NDArray[np.generic], offsets: npt.NDArray[np.generic]) -> list[str]:
    """The inverse of ``encode_strings``."""
    data = np.asarray(blob, dtype=np.uint8).tobytes()
    out: list[str] = []
    start = 0
    for end in np.asarray(offsets, dtype=np.int64).tolist():
        out.append(data[start:end].decode("utf-8"))
        start = end
    return out


def content_hash(arrays: Mapping[str, npt.NDArray[np.generic]], *extra: str) -> str:
    """A short hash of the arrays' names, types, shapes and values (and ``extra`` strings)."""
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode("utf-8") + b"\0")
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:12]


def save_arrays(arrays: Mapping[str, npt.NDArray[np.generic]]) -> bytes:
    """The arrays as compressed ``.npz`` bytes."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **dict(arrays))  # type: ignore[arg-type]
    return buffer.getvalue()


def load_arrays(payload: bytes, required: Sequence[str]) -> Arrays:
    """Read ``.npz`` bytes without pickle; raises ModelFormatError if any array is missing."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays: Arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        raise ModelFormatError("The model file's data is corrupt or not ours.") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ModelFormatError(f"The model file lacks {', '.join(missing)}; it is corrupt.")
    return arrays
