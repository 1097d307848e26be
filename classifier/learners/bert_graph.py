"""A BERT sentence encoder (all-MiniLM-L6-v2) as an ONNX graph, run without PyTorch.

The graph computes what sentence-transformers computes for this model (``BertModel``, mean
pooling over real tokens, L2 normalisation) step for step as transformers' eager BERT does, with
ONNX Runtime's fused operators for self-attention (``Attention``) and the feed-forward GELU
(``BiasGelu``): the same sums in another order, so the vectors agree within float32 rounding
(within 3e-7 of sentence-transformers' on the starter tickets;
``tests/classifier/learners/test_encoder.py`` holds them to 1e-5). Inputs ``input_ids``,
``attention_mask`` and ``token_type_ids`` (int64, batch x tokens); output ``embedding``
(float32, batch x hidden size, unit length).

The graph holds no weights: each weight is an initializer marked as external data, and
``session`` hands ONNX Runtime the arrays read from the model package's ``model.safetensors``
(``runtime_weights``: Linear weights transposed, each layer's query, key and value side by
side). So the shipped graph, ``GRAPH_FILE``, is a few kilobytes, and running it needs neither
torch nor the ``onnx`` package. ``build_graph`` writes it node by node with onnx's helper API
(dev extra only); regenerate it with ``python -m classifier.learners.bert_graph`` after changing
this module (a test checks that the shipped file is what it builds).
"""

from __future__ import annotations

import json
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
#: ONNX opset: 17 has LayerNormalization.
OPSET = 17
#: ONNX Runtime's own operators (``Attention``, ``BiasGelu``).
CONTRIB = "com.microsoft"
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

    Linear weights become ``<name>.T``, transposed (the graph multiplies ``x @ W.T``); each
    layer's query, key and value projections become one ``<layer>.attention.self.qkv.weight.T``
    (query, key, value side by side) and ``...qkv.bias``, as ONNX Runtime's ``Attention`` takes
    them. The pooler and the position ids, which sentence-transformers does not use, are left
    out.
    """
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name, array in checkpoint.items():
        if name.startswith("pooler.") or name == "embeddings.position_ids":
            continue
        if _is_linear(name):
            out[f"{name}.T"] = np.ascontiguousarray(np.asarray(array, dtype=np.float32).T)
        else:
            out[name] = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    for prefix in sorted({name.rsplit(".", 2)[0] for name in checkpoint if _is_projection(name)}):
        parts = [f"{prefix}.{part}" for part in _PROJECTIONS]
        out[f"{prefix}.qkv.weight.T"] = np.concatenate(
            [out.pop(f"{part}.weight.T") for part in parts], axis=1
        )
        out[f"{prefix}.qkv.bias"] = np.concatenate([out.pop(f"{part}.bias") for part in parts])
    return out


#: The self-attention projections, in the order ``Attention`` takes them.
_PROJECTIONS = ("query", "key", "value")


def _is_projection(name: str) -> bool:
    """Whether checkpoint tensor ``name`` is a self-attention query, key or value weight or bias."""
    parts = name.split(".")
    return parts[-4:-2] == ["attention", "self"] and parts[-2] in _PROJECTIONS


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

    def dense_residual_norm(self, x: str, residual: str, prefix: str, eps: float) -> str:
        """``LayerNorm(x @ W.T + b + residual)``: torch's dense, dropout (none at inference),
        residual and LayerNorm. (ONNX Runtime's ``SkipLayerNormalization`` would do the last
        three in one node, but took 7 % more CPU than these.)"""
        product = self.op("MatMul", x, self.weight(f"{prefix}.dense.weight.T"))
        summed = self.op(
            "Add", self.op("Add", product, self.weight(f"{prefix}.dense.bias")), residual
        )
        return self.layer_norm(summed, f"{prefix}.LayerNorm", eps)

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

    # Padding: attention sees a 0/1 mask per (batch, key), pooling a float one.
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    key_mask = g.op("Cast", "attention_mask", to=TensorProto.INT32)

    for n in range(config.num_hidden_layers):
        p = f"encoder.layer.{n}"
        # ONNX Runtime's fused self-attention: query, key and value in one product, scores
        # scaled by 1/sqrt(head size), padded keys given float32's lowest value (what
        # transformers adds), softmax, the weighted values with the heads joined again.
        context = g.op(
            "Attention",
            hidden,
            g.weight(f"{p}.attention.self.qkv.weight.T"),
            g.weight(f"{p}.attention.self.qkv.bias"),
            key_mask,
            domain=CONTRIB,
            num_heads=config.num_attention_heads,
            mask_filter_value=MASKED_SCORE,
        )
        attended = g.dense_residual_norm(context, hidden, f"{p}.attention.output", eps)
        inner = g.op("MatMul", attended, g.weight(f"{p}.intermediate.dense.weight.T"))
        # Exact (erf) GELU of the product plus its bias, in one pass.
        gelu = g.op("BiasGelu", inner, g.weight(f"{p}.intermediate.dense.bias"), domain=CONTRIB)
        hidden = g.dense_residual_norm(gelu, attended, f"{p}.output", eps)

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
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)],
        producer_name="triage-bot",
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
    4.8 ms; with the other core busy, two sleeping threads were no slower than one. A short
    spin window (``session.intra_op.spin_duration_us`` 100 or 1,000) made the longest starter
    tickets 20-30 % slower at a load average of 8-9 (interleaved runs). So every batch, live or
    bulk, uses the same session on both cores, its threads sleeping when idle.
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
