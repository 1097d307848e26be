from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.learners import bert_graph
from classifier.learners.bert_graph import BertConfig
from classifier.learners.encoder import (
    MAX_ENCODER_CHARS,
    MAX_TOKENS,
    SentenceEncoder,
    encoder_available,
    length_groups,
    model_dir,
    shared_encoder,
)

pytestmark = [
    pytest.mark.embeddings,
    pytest.mark.skipif(not encoder_available(), reason="the embeddings extra is not installed"),
]

PROBES = ["I got charged two times this month", "the app crashed with an error", "reset password"]


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    """The MiniLM encoder, loaded once for the whole test session."""
    return shared_encoder()


def test_encoder_gives_unit_vectors(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["hello", "x" * 50_000])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert shared_encoder() is encoder


#: Texts that stress the tokenizer and the graph: accents, CJK, emoji, whitespace, nothing,
#: one word piece past the limit, far past it, and padding in a batch of mixed lengths.
TRICKY = [
    *PROBES,
    "a much longer ticket " * 40,
    "ok",
    "  padded text  ",
    "x" * 3_000,
    "Héllo Wörld, ÇA VA? naïve café 東京 🎉 <@U123> &amp; https://example.com/a?b=c",
    "",
    "   ",
    "word " * 126,
]


def test_encode_matches_sentence_transformers(encoder: SentenceEncoder) -> None:
    """The torch-free encoder gives sentence-transformers' own vectors, in the caller's order.

    sentence-transformers (and torch) are in the dev extra for this comparison only.
    """
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(
        str(model_dir()), device="cpu", local_files_only=True
    )
    reference.max_seq_length = MAX_TOKENS
    wanted = reference.encode(
        [t[:MAX_ENCODER_CHARS] for t in TRICKY], normalize_embeddings=True, convert_to_numpy=True
    )
    np.testing.assert_allclose(encoder.encode(TRICKY), wanted, atol=1e-5)
    for text, row in zip(TRICKY, wanted, strict=True):  # one at a time: the live-ticket path
        np.testing.assert_allclose(encoder.encode([text])[0], row, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_length_groups_pad_little_and_keep_every_text() -> None:
    lengths = [30, 5, 100, 6, 31, 5, 128, 36, 44]
    groups = length_groups(lengths)
    assert groups == [[1, 5, 3], [0, 4, 7], [8], [2, 6]]  # 30 * 1.25 + 4 < 44
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert [len(g) for g in length_groups([12] * 150)] == [64, 64, 22]
    assert length_groups([]) == []


def test_the_encoder_runs_without_torch_or_transformers() -> None:
    """Loading and running the encoder imports neither (they may be installed for the dev tests)."""
    script = (
        "import sys\n"
        "from classifier.learners.encoder import SentenceEncoder\n"
        "vectors = SentenceEncoder().encode(['my invoice is wrong'])\n"
        "heavy = sorted({'torch', 'transformers', 'sentence_transformers'} & set(sys.modules))\n"
        "print(vectors.shape, heavy)\n"
    )
    done = subprocess.run(  # noqa: S603  # this interpreter, a fixed script
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.stdout.strip() == "(1, 384) []"


def test_bert_config_refuses_another_architecture(tmp_path: Path) -> None:
    config = {
        "model_type": "roberta",
        "hidden_size": 8,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "intermediate_size": 16,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="not a BERT model"):
        BertConfig.from_file(path)
    path.write_text(json.dumps({**config, "model_type": "bert"}), encoding="utf-8")
    assert BertConfig.from_file(path).hidden_size == 8


def test_the_shipped_graph_is_what_the_builder_writes() -> None:
    """``minilm_l6_graph.onnx`` is generated: regenerate it when ``bert_graph`` changes."""
    pytest.importorskip("onnx")  # the builder's only dependency, in the dev extra
    weights, config = bert_graph.load_weights(model_dir())
    assert bert_graph.build_graph(weights, config) == bert_graph.GRAPH_FILE.read_bytes(), (
        "run: python -m classifier.learners.bert_graph"
    )
    assert bert_graph.GRAPH_FILE.stat().st_size < 100_000  # the structure only, no weights


def test_a_graph_built_for_another_configuration_is_refused() -> None:
    weights, config = bert_graph.load_weights(model_dir())
    other = BertConfig(**{**config.__dict__, "layer_norm_eps": 1e-5})
    with pytest.raises(ValueError, match="built for"):
        bert_graph.session(bert_graph.GRAPH_FILE.read_bytes(), weights, other, threads=1)
