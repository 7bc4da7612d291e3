"""Graph optimisation that every engine profits from, saved as a portable ONNX model.

Passes, in order (each one recorded by name with the node count after it):

1. ``onnxslim``: constant folding, Constant nodes turned into initializers (PicoDet keeps its
   weights as Constant nodes, which quantizers do not see as weights), Conv+BatchNormalization
   and other fusions onnxslim knows, dead-node and Identity removal, shape inference.
2. ``fuse-hardswish``: ``x * clip(x + 3, 0, 6) / 6`` (four nodes, 94 times in PicoDet-LCNet)
   → one ``HardSwish`` node (opset 14). ONNX Runtime has a kernel for it but does not fuse the
   pattern itself; OpenVINO fuses it either way.
3. ``opset-upgrade``: to :data:`MIN_OPSET` with ``onnx.version_converter`` — per-channel
   QuantizeLinear/DequantizeLinear (the ``axis`` attribute) needs opset 13, and HardSwish 14.
4. ``name-nodes``: every node gets a unique name, so layers can be reported and kept in float.

The engines' own run-time optimisers (ORT's level-3 fusions, OpenVINO's compile-time passes)
still run when the model is loaded; they are not saved, because their output is tied to one
engine and one CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgedeploy.errors import UserError

log = logging.getLogger(__name__)

MIN_OPSET = 14  # per-channel Q/DQ (13) and HardSwish (14)


@dataclass
class GraphReport:
    """What graph optimisation did: passes applied (in order), nodes and bytes before/after."""

    passes: list[str] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    opset_before: int = 0
    opset_after: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def float_weight_count(model: onnx.ModelProto) -> int:
    """Number of float32 weights (initializers and Constant-node tensors with more than one element)."""
    n = sum(int(np.prod(t.dims)) for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.FLOAT and int(np.prod(t.dims)) > 1)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT and int(np.prod(a.t.dims)) > 1:
                    n += int(np.prod(a.t.dims))
    return n


def optimize_graph(model: onnx.ModelProto, *, min_opset: int = MIN_OPSET) -> tuple[onnx.ModelProto, GraphReport]:
    """Run the passes above on ``model``; returns the new model and what was done."""
    import onnxslim

    rep = GraphReport(nodes_before=len(model.graph.node), opset_before=opset(model))
    try:
        model = onnxslim.slim(model)
    except Exception as exc:  # onnxslim is best effort: a model it cannot slim still quantizes
        log.warning("onnxslim could not optimise the model (%s); continuing without it", str(exc)[:200])
    else:
        rep.passes.append(f"onnxslim (constant folding, BatchNorm fusion, Constant→initializer, dead nodes): "
                          f"{rep.nodes_before}→{len(model.graph.node)} nodes")
    if opset(model) < min_opset:
        before = opset(model)
        try:
            model = onnx.version_converter.convert_version(model, min_opset)
        except Exception as exc:
            raise UserError(f"cannot upgrade the model from opset {before} to {min_opset} (needed for per-channel "
                            f"INT8): {str(exc).splitlines()[0][:200]}; re-export it at opset {min_opset} or later") from None
        rep.passes.append(f"opset-upgrade {before}→{min_opset} (per-channel Q/DQ needs 13, HardSwish 14)")
    fused = fuse_hardswish(model)
    if fused:
        rep.passes.append(f"fuse-hardswish: {fused} x*clip(x+3,0,6)/6 → HardSwish")
    _name_nodes(model)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # shapes help the quantizer but are not required
        log.info("ONNX shape inference failed: %s", str(exc)[:200])
    rep.nodes_after, rep.opset_after = len(model.graph.node), opset(model)
    return model, rep


def index(g: onnx.GraphProto) -> tuple[dict, dict, dict[str, list]]:
    """(initializers by name, producing node by tensor name, consuming nodes by tensor name)."""
    producer = {o: n for n in g.node for o in n.output}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return {t.name: t for t in g.initializer}, producer, users


def fuse_hardswish(model: onnx.ModelProto) -> int:
    """Replace ``x * clip(x + 3, 0, 6) / 6`` — as ``Div(Mul(x, c), 6)`` or ``Mul(x, Div(c, 6))`` with
    ``c = Clip(Add(x, 3), 0, 6)`` — by ``HardSwish(x)``, in place, where the intermediate tensors
    have no other consumer. Needs opset >= 14; returns the number of patterns replaced."""
    if opset(model) < 14:
        return 0
    g = model.graph
    inits, producer, users = index(g)
    outputs = {o.name for o in g.output}

    def scalar(name: str, value: float) -> bool:
        v = numpy_helper.to_array(inits[name]) if name in inits else None
        return v is not None and v.size == 1 and abs(float(v.reshape(())) - value) < 1e-6

    def only_user(name: str, op: str):
        us = users.get(name, [])
        return us[0] if len(us) == 1 and us[0].op_type == op and name not in outputs else None

    def other(node, name: str) -> str:
        return node.input[1] if node.input[0] == name else node.input[0]

    drop, replace = set(), {}
    for clip in g.node:
        if clip.op_type != "Clip" or len(clip.input) < 3 or not (scalar(clip.input[1], 0.0) and scalar(clip.input[2], 6.0)):
            continue
        add = producer.get(clip.input[0])
        if add is None or add.op_type != "Add" or only_user(clip.input[0], "Clip") is None:
            continue
        x = add.input[0] if scalar(add.input[1], 3.0) else add.input[1] if scalar(add.input[0], 3.0) else None
        c = clip.output[0]
        if x is None:
            continue
        mul, div = only_user(c, "Mul"), only_user(c, "Div")
        if mul is not None and other(mul, c) == x:  # Div(Mul(x, c), 6)
            last = only_user(mul.output[0], "Div")
            if last is None or last.input[0] != mul.output[0] or not scalar(last.input[1], 6.0):
                continue
            inner = mul
        elif div is not None and div.input[0] == c and scalar(div.input[1], 6.0):  # Mul(x, Div(c, 6))
            last = only_user(div.output[0], "Mul")
            if last is None or other(last, div.output[0]) != x:
                continue
            inner = div
        else:
            continue
        drop.update(id(n) for n in (add, clip, inner))
        replace[id(last)] = helper.make_node("HardSwish", [x], list(last.output), name=f"{clip.name or 'clip'}_hardswish")
    if not replace:
        return 0
    kept = [replace.get(id(n), n) for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    return len(replace)


def _name_nodes(model: onnx.ModelProto) -> None:
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest element-wise difference over the outputs both dicts share."""
    return max((float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a if k in b and a[k].size), default=0.0)
