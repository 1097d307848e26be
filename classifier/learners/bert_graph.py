"""A BERT sentence encoder (all-MiniLM-L6-v2) as an ONNX graph, run without PyTorch.

The graph computes what sentence-transformers computes for this model (``BertModel``, mean
pooling over real tokens, L2 normalisation), op for op as transformers' eager BERT does, so the
vectors agree within float32 rounding (``tests/classifier/learners/test_encoder.py`` holds them
to 1e-5). Inputs ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, batch x
tokens); output ``embedding`` (float32, batch x hidden size, unit length).

The graph holds no weights: each weight is an initializer marked as external data, and
``session`` hands ONNX Runtime the arrays read from the model package's ``model.safetensors``
(``runtime_weights``: Linear weights transposed). So the shipped graph, ``GRAPH_FILE``, is a
few kilobytes, and running it needs neither torch nor the ``onnx`` package. ``build_graph``
writes it node by node with onnx's helper API (dev extra only); regenerate it with
``python -m classifier.learners.bert_graph`` after changing this module (a test checks that the
shipped file is what it builds).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

#: Inputs in the order the encoder feeds them.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "embedding"
#: ONNX opset: 17 has LayerNormalization; ONNX Runtime fuses the rest (attention, GELU).
OPSET = 17
#: Where the graph says its weights are; they are handed to ONNX Runtime in memory instead.
EXTERNAL_LOCATION = "weights-in-memory"
#: The graph for all-MiniLM-L6-v2's configuration, built by ``build_graph``.
GRAPH_FILE = Path(__file__).with_name("minilm_l6_graph.onnx")
#: The graph's metadata key holding the ``BertConfig`` it was built for.
CONFIG_KEY = "bert_config"
#: What masked attention scores get: transformers adds float32's lowest value to them.
MASKED_SCORE = float(np.finfo(np.float32).min)


@dataclass(frozen=True)
class BertConfig:
    """The parts of a BERT ``config.json`` the graph needs."""

    hidden_size: int
    num_attention_heads: int
    num_hidden_layers: int
    intermediate_size: int
    layer_norm_eps: float
    hidden_act: str

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = cls(
            hidden_size=int(raw["hidden_size"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            intermediate_size=int(raw["intermediate_size"]),
            layer_norm_eps=float(raw["layer_norm_eps"]),
            hidden_act=str(raw["hidden_act"]),
        )
        if raw.get("model_type") != "bert" or config.hidden_act != "gelu":
            raise ValueError(f"{path} is not a BERT model with exact GELU")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        return config

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def _is_linear(name: str) -> bool:
    """Whether checkpoint tensor ``name`` is a torch ``nn.Linear`` weight (stored out x in)."""
    return name.endswith(".weight") and name.startswith("encoder.") and ".LayerNorm." not in name


def runtime_weights(
    checkpoint: Mapping[str, npt.NDArray[np.generic]],
) -> dict[str, npt.NDArray[np.float32]]:
    """The graph's initializers from a BERT checkpoint: name -> float32 array.

    Linear weights become ``<name>.T``, transposed (the graph multiplies ``x @ W.T``); the
    pooler and the position ids, which sentence-transformers does not use, are left out.
    """
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name, array in checkpoint.items():
        if name.startswith("pooler.") or name == "embeddings.position_ids":
            continue
        if _is_linear(name):
            out[f"{name}.T"] = np.ascontiguousarray(np.asarray(array, dtype=np.float32).T)
        else:
            out[name] = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    return out


class _Graph:
    """Nodes and initializers collected while the graph is written."""

    def __init__(self, weights: Mapping[str, npt.NDArray[np.float32]]) -> None:
        from onnx import TensorProto, helper, numpy_helper

        self._tensor = TensorProto
        self._helper = helper
        self._numpy_helper = numpy_helper
        self._weights = weights
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        #: The external weights the graph names so far.
        self.weights: set[str] = set()
        self._names: set[str] = set()
        self._count = 0

    def weight(self, name: str) -> str:
        """A weight (a ``runtime_weights`` name), named in the graph as external data only.

        ONNX Runtime gets the array itself through ``SessionOptions.add_external_initializers``,
        so the 90 MB of weights are neither in the graph nor copied into a protobuf.
        """
        if name not in self._names:
            tensor = self._tensor(
                name=name,
                data_type=self._tensor.FLOAT,
                dims=self._weights[name].shape,
                data_location=self._tensor.EXTERNAL,
            )
            tensor.external_data.add(key="location", value=EXTERNAL_LOCATION)
            self.initializers.append(tensor)
            self.weights.add(name)
            self._names.add(name)
        return name

    def constant(self, name: str, value: npt.NDArray[Any]) -> str:
        if name not in self._names:
            self.initializers.append(self._numpy_helper.from_array(value, name))
            self._names.add(name)
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        self._count += 1
        output = f"{op_type.lower()}_{self._count}"
        self.nodes.append(self._helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def linear(self, x: str, prefix: str) -> str:
        """``x @ W.T + b``, as torch's ``nn.Linear``."""
        product = self.op("MatMul", x, self.weight(f"{prefix}.weight.T"))
        return self.op("Add", product, self.weight(f"{prefix}.bias"))

    def heads(self, x: str, prefix: str, shape: str, perm: list[int]) -> str:
        """A linear projection split into attention heads (batch, head, token, size)."""
        return self.op("Transpose", self.op("Reshape", self.linear(x, prefix), shape), perm=perm)

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.weight(f"{prefix}.weight"),
            self.weight(f"{prefix}.bias"),
            axis=-1,
            epsilon=eps,
        )


def build_graph(weights: Mapping[str, npt.NDArray[np.float32]], config: BertConfig) -> bytes:
    """The encoder's serialised graph for ``weights`` (``runtime_weights``) and ``config``."""
    from onnx import TensorProto, helper

    g = _Graph(weights)
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads
    eps = config.layer_norm_eps
    i64 = np.int64

    # Embeddings: word + position (0..tokens-1) + token type, then LayerNorm.
    words = g.op("Gather", g.weight("embeddings.word_embeddings.weight"), "input_ids")
    shape = g.op("Shape", "input_ids")
    tokens = g.op("Gather", shape, g.constant("one", np.array(1, dtype=i64)), axis=0)
    positions = g.op(
        "Range", g.constant("zero", np.array(0, dtype=i64)), tokens, g.constant("one", np.array(1))
    )
    where = g.op("Gather", g.weight("embeddings.position_embeddings.weight"), positions)
    kinds = g.op("Gather", g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids")
    hidden = g.op("Add", g.op("Add", words, kinds), where)
    hidden = g.layer_norm(hidden, "embeddings.LayerNorm", eps)

    # Padding masks: 0 for real tokens, float32's lowest value for padding, per (batch, key).
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    mask4 = g.op("Unsqueeze", mask, g.constant("axes_1_2", np.array([1, 2], dtype=i64)))
    one = g.constant("one_f", np.array(1.0, dtype=np.float32))
    bias = g.op(
        "Mul",
        g.op("Sub", one, mask4),
        g.constant("masked_score", np.array(MASKED_SCORE, dtype=np.float32)),
    )

    split_heads = g.constant("split_heads", np.array([0, 0, heads, head_size], dtype=i64))
    join_heads = g.constant("join_heads", np.array([0, 0, config.hidden_size], dtype=i64))
    scale = g.constant("scale", np.array(1.0 / math.sqrt(head_size), dtype=np.float32))
    sqrt_two = g.constant("sqrt_two", np.array(math.sqrt(2.0), dtype=np.float32))
    half = g.constant("half", np.array(0.5, dtype=np.float32))

    for n in range(config.num_hidden_layers):
        p = f"encoder.layer.{n}"
        attention_in = f"{p}.attention.self"
        query = g.heads(hidden, f"{attention_in}.query", split_heads, [0, 2, 1, 3])
        key = g.heads(hidden, f"{attention_in}.key", split_heads, [0, 2, 3, 1])  # keys transposed
        value = g.heads(hidden, f"{attention_in}.value", split_heads, [0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", query, key), scale), bias)
        attention = g.op("MatMul", g.op("Softmax", scores, axis=-1), value)
        context = g.op("Reshape", g.op("Transpose", attention, perm=[0, 2, 1, 3]), join_heads)
        attended = g.op("Add", g.linear(context, f"{p}.attention.output.dense"), hidden)
        attended = g.layer_norm(attended, f"{p}.attention.output.LayerNorm", eps)
        inner = g.linear(attended, f"{p}.intermediate.dense")
        # Exact GELU, x * (1 + erf(x / sqrt(2))) * 0.5, in the order torch exports it: ONNX
        # Runtime fuses that pattern with the bias into one BiasGelu (about 4 % less CPU).
        erf = g.op("Erf", g.op("Div", inner, sqrt_two))
        gelu = g.op("Mul", g.op("Mul", inner, g.op("Add", erf, one)), half)
        output = g.op("Add", g.linear(gelu, f"{p}.output.dense"), attended)
        hidden = g.layer_norm(output, f"{p}.output.LayerNorm", eps)

    # Mean over real tokens (count clamped at 1e-9), then unit length (norm clamped at 1e-12).
    mask3 = g.op("Unsqueeze", mask, g.constant("axes_2", np.array([2], dtype=i64)))
    axis1 = g.constant("axis_1", np.array([1], dtype=i64))
    summed = g.op("ReduceSum", g.op("Mul", hidden, mask3), axis1, keepdims=0)
    counts = g.op(
        "Max",
        g.op("ReduceSum", mask3, axis1, keepdims=0),
        g.constant("min_count", np.array(1e-9, dtype=np.float32)),
    )
    pooled = g.op("Div", summed, counts)
    norm = g.op(
        "Max",
        g.op("ReduceL2", pooled, axes=[-1], keepdims=1),  # axes: an attribute until opset 18
        g.constant("min_norm", np.array(1e-12, dtype=np.float32)),
    )
    g.nodes.append(helper.make_node("Div", [pooled, norm], [OUTPUT]))

    batch_tokens = ["batch", "tokens"]
    graph = helper.make_graph(
        g.nodes,
        "sentence_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, batch_tokens) for name in INPUTS],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", config.hidden_size])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="triage-bot"
    )
    helper.set_model_props(model, {CONFIG_KEY: config.to_json()})
    if g.weights != set(weights):
        raise ValueError(f"weights the graph does not use: {sorted(set(weights) - g.weights)}")
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def load_weights(model_dir: Path) -> tuple[dict[str, npt.NDArray[np.float32]], BertConfig]:
    """The graph's weights and the configuration of the model in ``model_dir``."""
    from safetensors.numpy import load_file

    weights = runtime_weights(load_file(str(model_dir / "model.safetensors")))
    return weights, BertConfig.from_file(model_dir / "config.json")


def session(
    graph: bytes, weights: Mapping[str, npt.NDArray[np.float32]], config: BertConfig, threads: int
) -> InferenceSession:
    """An ONNX Runtime session running ``graph`` with ``weights``, on ``threads`` cores.

    ONNX Runtime copies the weights, so the caller's arrays may go once it returns. Refuses a
    graph built for another configuration. Idle threads sleep instead of spinning: that leaves
    the bot's event loop its core. Measured on a two-core box (one ticket of about 13 word
    pieces, median): one thread 6.1 ms, two sleeping threads 4.5 ms, two spinning threads
    4.8 ms; with the other core busy, two sleeping threads were no slower than one. So every
    batch, live or bulk, uses the same session on both cores.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    names = list(weights)
    values = [onnxruntime.OrtValue.ortvalue_from_numpy(weights[name]) for name in names]
    options.add_external_initializers(names, values)
    created = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    built_for = created.get_modelmeta().custom_metadata_map.get(CONFIG_KEY)
    if built_for != config.to_json():
        raise ValueError(f"the encoder graph was built for {built_for}, not {config.to_json()}")
    return created


def main(argv: list[str]) -> int:
    """Write ``GRAPH_FILE`` (or the path given) from the installed model package."""
    from classifier.learners.encoder import model_dir

    weights, config = load_weights(model_dir())
    target = Path(argv[0]) if argv else GRAPH_FILE
    target.write_bytes(build_graph(weights, config))
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
