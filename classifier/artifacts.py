"""The model artefact container: a safe, self-describing byte format (no pickle).

Layout: ``MAGIC``, a 4-byte big-endian header length, a UTF-8 JSON header, then the payload.
The header's ``kind`` says which module can read the payload; ``meta`` is free-form JSON
(labels, learner settings, training-data hash). Payloads are NumPy ``.npz`` archives loaded
with ``allow_pickle=False``, or JSON; never anything that executes code when loaded.
"""

from __future__ import annotations

import importlib
import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from classifier.errors import ModelFormatError
from classifier.json_value import JsonObject
from classifier.protocols import TrainedModel

if TYPE_CHECKING:
    from classifier.learners import LearnerContext

MAGIC = b"TRIAGE-MODEL\x00v1\n"
_HEADER_LEN = struct.Struct(">I")
_MAX_HEADER = 16 * 1024 * 1024

#: kind -> "module:function" taking (meta, payload, context) and returning a TrainedModel.
#: Imported lazily so optional dependencies are needed only for the kinds actually loaded.
LOADERS: dict[str, str] = {
    "tfidf": "classifier.learners.tfidf:load",
    "embedding": "classifier.learners.embedding:load",
    "openai": "classifier.llm.prompted:load",
    "openai-finetune": "classifier.llm.finetune:load",
}


@dataclass(frozen=True)
class Artefact:
    """An unpacked artefact."""

    kind: str
    meta: JsonObject
    payload: bytes


def pack(kind: str, meta: JsonObject, payload: bytes) -> bytes:
    """Wrap ``payload`` with its kind and metadata."""
    header = json.dumps({"kind": kind, "meta": meta}, sort_keys=True).encode("utf-8")
    return MAGIC + _HEADER_LEN.pack(len(header)) + header + payload


def unpack(data: bytes) -> Artefact:
    """Read the container; raises ModelFormatError for anything this project did not write."""
    if not data.startswith(MAGIC):
        raise ModelFormatError("This is not a triage model file (it lacks the model header).")
    start = len(MAGIC)
    if len(data) < start + _HEADER_LEN.size:
        raise ModelFormatError("The model file is truncated.")
    (length,) = _HEADER_LEN.unpack_from(data, start)
    start += _HEADER_LEN.size
    if length > _MAX_HEADER or len(data) < start + length:
        raise ModelFormatError("The model file is truncated or corrupt.")
    try:
        header = json.loads(data[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFormatError("The model file's header is corrupt.") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ModelFormatError("The model file's header is corrupt.")
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise ModelFormatError("The model file's header is corrupt.")
    return Artefact(kind=header["kind"], meta=meta, payload=data[start + length :])


def load_model(data: bytes, context: LearnerContext | None = None) -> TrainedModel:
    """Load any model artefact this project writes.

    LLM-backed kinds need the ``context``'s OpenAI client; local kinds ignore it.
    """
    artefact = unpack(data)
    target = LOADERS.get(artefact.kind)
    if target is None:
        raise ModelFormatError(f"Unknown model kind {artefact.kind!r}; is this version too old?")
    module_name, function_name = target.split(":")
    loader = getattr(importlib.import_module(module_name), function_name)
    model: TrainedModel = loader(artefact.meta, artefact.payload, context)
    return model
