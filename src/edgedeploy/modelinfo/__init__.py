"""What a model is: inputs, outputs, opset, parameters, size, FLOPs, operator histogram, engines.

FLOPs are counted from the ONNX graph after shape inference at a concrete input shape (the
zoo's example shape, or the one given): 2 × multiply-accumulates of Conv, ConvTranspose,
MatMul and Gemm, the operators that dominate these models. Nodes whose shapes stay unknown
are counted in ``flops_nodes_unknown`` rather than guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.ingest import Model, load_model

MAC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class ModelInfo:
    name: str
    format: str
    path: str
    size_bytes: int
    inputs: list[dict]
    outputs: list[dict]
    opset: int | None
    parameters: int
    nodes: int
    op_histogram: dict[str, int]
    flops: int | None
    flops_shape: list[int] | None
    flops_nodes_unknown: int
    engines: dict[str, str] = field(default_factory=dict)  # engine -> "yes" | why not

    def to_dict(self) -> dict:
        return asdict(self)


def describe(source, *, shape: tuple[int, ...] | None = None) -> ModelInfo:
    """Inspect ``source`` (path, zoo name or Model). ``shape`` fixes a dynamic input for FLOPs."""
    model = load_model(source)
    shape = shape or (model.zoo.example_shape if model.zoo else None)
    runs = {}
    for name in engines.ENGINES:
        why = engines.runnable(name, model.format)
        runs[name] = why or ("yes" if engines.available(name) else f"not installed: {engines.spec(name).install}")
    if model.format == "paddle":
        return _describe_paddle(model, runs)
    foreign = unknown_operators(model.path)
    if foreign:  # no engine has an operator outside the ONNX standard without a custom-op library
        for name, why in runs.items():
            if why == "yes":
                runs[name] = f"no: {', '.join(foreign[:3])} not a standard ONNX operator (needs a custom-op library)"
    return _describe_onnx(model, shape, runs)


def unknown_operators(path) -> list[str]:
    """``domain:Op`` of the nodes that are neither standard ONNX nor ONNX Runtime's contrib operators."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    contrib = ("com.microsoft", "com.microsoft.nchwc", "ai.onnx.contrib")
    found = {f"{n.domain}:{n.op_type}" for n in graph.node
             if n.domain not in contrib and not onnx.defs.has(n.op_type, n.domain or "")}
    return sorted(found)


def _tensor_dict(vi) -> dict:
    import onnx

    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None) for d in t.shape.dim]
    return {"name": vi.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}


def _describe_onnx(model: Model, shape, runs) -> ModelInfo:
    import onnx

    proto = onnx.load(str(model.onnx_path()))
    g = proto.graph
    init_names = {i.name for i in g.initializer}
    params = sum(int(np.prod(i.dims)) for i in g.initializer)
    # Weights stored as Constant nodes (as in the PicoDet layout model) are parameters too.
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and len(a.t.dims) > 1:
                    params += int(np.prod(a.t.dims))
    inputs = [vi for vi in g.input if vi.name not in init_names]
    flops, unknown, used_shape = _flops(proto, inputs, shape)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return ModelInfo(
        name=model.name, format=model.format, path=str(model.path), size_bytes=model.size_bytes(),
        inputs=[_tensor_dict(v) for v in inputs], outputs=[_tensor_dict(v) for v in g.output],
        opset=opset, parameters=params, nodes=len(g.node),
        op_histogram=dict(Counter(n.op_type for n in g.node).most_common()),
        flops=flops, flops_shape=used_shape, flops_nodes_unknown=unknown, engines=runs,
    )


def _fix_and_infer(proto, inputs, shape, *, symbolic: bool = False):
    """(inferred proto, known shapes by tensor name, element sizes by name, the shape used) — or
    (None, {}, {}, None) when the single input's shape cannot be fixed."""
    import onnx

    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # do not touch the caller's copy
    graph_inputs = [vi for vi in proto.graph.input if vi.name in {v.name for v in inputs}]
    if len(graph_inputs) != 1:
        return None, {}, {}, None
    dims = graph_inputs[0].type.tensor_type.shape.dim
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    fixed = list(shape) if shape and len(shape) == len(declared) else [d or 1 for d in declared]
    if any(d is None for d in declared) and not shape:
        return None, {}, {}, None
    for d, v in zip(dims, fixed):
        d.Clear()
        d.dim_value = int(v)
    inferred = None
    if symbolic:  # ORT's symbolic inference follows Reshape/Shape arithmetic that onnx's loses (transformers)
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
        except Exception:  # it refuses some graphs; onnx's inference still gives most shapes
            inferred = None
    inferred = inferred or onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    shapes: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        t = vi.type.tensor_type
        d = [x.dim_value if x.HasField("dim_value") else None for x in t.shape.dim]
        if t.elem_type:
            sizes[vi.name] = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
        if all(v is not None and v > 0 for v in d):  # [] is a scalar: known
            shapes[vi.name] = d
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
        sizes[init.name] = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = list(a.t.dims)
                    sizes[node.output[0]] = onnx.helper.tensor_dtype_to_np_dtype(a.t.data_type).itemsize
    return inferred, shapes, sizes, fixed


def _flops(proto, inputs, shape) -> tuple[int | None, int, list[int] | None]:
    inferred, shapes, _, fixed = _fix_and_infer(proto, inputs, shape)
    if inferred is None:
        return None, 0, None
    total, unknown = 0, 0
    for node in inferred.graph.node:
        if node.op_type not in MAC_OPS:
            continue
        macs = _macs(node, shapes)
        if macs is None:
            unknown += 1
        else:
            total += macs
    return 2 * total, unknown, fixed


@dataclass
class NodeCost:
    """One operator's work at a concrete input shape.

    flops: 2 x MACs for Conv/ConvTranspose/MatMul/Gemm; about one per output element for the
        rest (a few for transcendental ones), which is small beside the bytes they move.
    weight_bytes: constant inputs (initializers, Constant nodes). activation_bytes: the other
        inputs read plus the outputs written. kind: "dense" (Conv with group 1, MatMul, Gemm),
        "depthwise" (grouped Conv), "memory" (everything else: bound by bandwidth).
    known: False when shape inference left a tensor of this node unknown (its figures are 0).
    """

    name: str
    op_type: str
    kind: str
    flops: int
    weight_bytes: int
    activation_bytes: int
    output_bytes: int
    known: bool = True

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


@dataclass
class CostBreakdown:
    """Per-node costs of a model at ``shape``, with totals and the peak of live activations (bytes)."""

    model: str
    shape: list[int]
    nodes: list[NodeCost]
    peak_activation_bytes: int

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def weight_bytes(self) -> int:
        return sum(n.weight_bytes for n in self.nodes)

    @property
    def unknown(self) -> int:
        return sum(not n.known for n in self.nodes)

    def by_kind(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for n in self.nodes:
            k = out.setdefault(n.kind, {"nodes": 0, "flops": 0, "bytes": 0})
            k["nodes"] += 1
            k["flops"] += n.flops
            k["bytes"] += n.bytes
        return out

    def to_dict(self) -> dict:
        return {"model": self.model, "shape": self.shape, "flops": self.flops, "weight_bytes": self.weight_bytes,
                "peak_activation_bytes": self.peak_activation_bytes, "unknown_nodes": self.unknown,
                "by_kind": self.by_kind(), "nodes": [asdict(n) for n in self.nodes]}


_ELEMENTWISE_FLOPS = {"Sigmoid": 4, "HardSigmoid": 3, "HardSwish": 4, "Tanh": 6, "Exp": 4, "Softmax": 5,
                      "BatchNormalization": 2, "LayerNormalization": 8, "Erf": 6, "Div": 1, "Sqrt": 2}
_SHAPE_OPS = {"Shape", "Constant", "Gather", "Unsqueeze", "Squeeze", "Concat", "Reshape", "Flatten", "Slice",
              "Cast", "Range", "ConstantOfShape", "Identity", "Transpose", "Expand"}


def node_costs(source, *, shape: tuple[int, ...] | None = None) -> CostBreakdown:
    """Per-operator FLOPs and bytes of ``source`` (path, zoo name or Model) at input ``shape``
    (needed when the model's input is dynamic; the zoo's example shape otherwise).

    Raises :class:`~edgedeploy.errors.UserError` when the shape cannot be fixed.
    """
    import onnx

    model = load_model(source)
    shape = shape or (model.zoo.example_shape if model.zoo else None)
    proto = onnx.load(str(model.onnx_path()))
    init_names = {i.name for i in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input if vi.name not in init_names]
    inferred, shapes, sizes, fixed = _fix_and_infer(proto, inputs, shape, symbolic=True)
    if inferred is None:
        raise UserError(f"{model.name}: per-operator costs need one input with a concrete shape; "
                        "its input is dynamic: give one, e.g. --shape 1x3x640x640")
    consts = set(init_names) | {n.output[0] for n in inferred.graph.node if n.op_type == "Constant"}
    nbytes = lambda t: int(np.prod(shapes[t])) * sizes.get(t, 4) if t in shapes else None  # noqa: E731
    nodes: list[NodeCost] = []
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            continue
        ins = [t for t in node.input if t]
        w = sum(nbytes(t) or 0 for t in ins if t in consts)
        acts = [nbytes(t) for t in ins if t not in consts]
        outs = [nbytes(t) for t in node.output if t]
        known = all(b is not None for b in (*acts, *outs))
        out_b = sum(b or 0 for b in outs)
        act_b = sum(b or 0 for b in acts) + out_b
        if node.op_type in MAC_OPS:
            macs = _macs(node, shapes)
            known = known and macs is not None
            flops = 2 * (macs or 0)
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            kind = "depthwise" if node.op_type == "Conv" and group > 1 else "dense"
        else:
            out_elems = sum(int(np.prod(shapes[t])) for t in node.output if t in shapes)
            flops = 0 if node.op_type in _SHAPE_OPS else out_elems * _ELEMENTWISE_FLOPS.get(node.op_type, 1)
            if node.op_type in ("MaxPool", "AveragePool"):
                k = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), [1])
                flops = out_elems * int(np.prod(k))
            elif node.op_type in ("GlobalAveragePool", "ReduceMean", "ReduceSum"):
                flops = sum(b or 0 for b in acts) // 4
            kind = "memory"
        nodes.append(NodeCost(name=node.name or node.output[0], op_type=node.op_type, kind=kind, flops=flops,
                              weight_bytes=w, activation_bytes=act_b, output_bytes=out_b, known=known))
    return CostBreakdown(model=model.name, shape=fixed, nodes=nodes,
                         peak_activation_bytes=_peak_live(inferred.graph, consts, nbytes))


def _peak_live(graph, consts: set[str], nbytes) -> int:
    """Largest sum of activations alive at once, walking the nodes in graph order (each tensor lives
    from the node that makes it to its last reader) — a lower bound on an engine's activation arena."""
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for t in node.input:
            last_use[t] = i
    for o in graph.output:
        last_use[o.name] = len(graph.node)
    live: dict[str, int] = {vi.name: nbytes(vi.name) or 0 for vi in graph.input if vi.name not in consts}
    peak = sum(live.values())
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        for t in node.output:
            if t:
                live[t] = nbytes(t) or 0
        peak = max(peak, sum(live.values()))
        for t in [t for t in live if last_use.get(t, -1) <= i]:
            del live[t]
    return peak


def _macs(node, shapes) -> int | None:
    out = shapes.get(node.output[0])
    ins = [shapes.get(i) for i in node.input[:2]]
    if out is None or any(s is None or len(s) == 0 for s in ins):
        return None
    x, w = ins
    if node.op_type == "Conv":  # out N,Co,H,W ; w Co,Ci/g,kh,kw
        return int(np.prod(out)) * int(np.prod(w[1:]))
    if node.op_type == "ConvTranspose":  # w Ci,Co/g,kh,kw ; every input pixel scatters a kernel
        return int(np.prod(x)) * int(np.prod(w[1:]))
    if node.op_type == "MatMul":
        return int(np.prod(out)) * int(x[-1])
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return int(np.prod(out)) * int(x[0] if trans_a else x[-1])
    return None


def _describe_paddle(model: Model, runs) -> ModelInfo:
    from paddle.base.proto import framework_pb2

    from edgedeploy.engines.paddle import declared_specs

    inputs_outputs = declared_specs(model)
    ops: Counter = Counter()
    params = 0
    if model.path.suffix == ".pdmodel":
        prog = framework_pb2.ProgramDesc()
        prog.ParseFromString(model.path.read_bytes())
        block = prog.blocks[0]
        ops.update(op.type for op in block.ops if op.type not in ("feed", "fetch"))
        params = sum(int(np.prod(v.type.dense_tensor.tensor.dims)) for v in block.vars
                     if v.persistable and v.type.type == framework_pb2.VarType.DENSE_TENSOR)
    feeds = [s.to_dict() for s in inputs_outputs.values()]
    return ModelInfo(
        name=model.name, format="paddle", path=str(model.path), size_bytes=model.size_bytes(),
        inputs=[f for f in feeds if f["name"] in _feed_names(model)],
        outputs=[f for f in feeds if f["name"] not in _feed_names(model)],
        opset=None, parameters=params, nodes=sum(ops.values()), op_histogram=dict(ops.most_common()),
        flops=None, flops_shape=None, flops_nodes_unknown=0, engines=runs,
    )


def _feed_names(model: Model) -> set[str]:
    from paddle.base.proto import framework_pb2

    prog = framework_pb2.ProgramDesc()
    prog.ParseFromString(model.path.read_bytes())
    return {op.outputs[0].arguments[0] for op in prog.blocks[0].ops if op.type == "feed"}
