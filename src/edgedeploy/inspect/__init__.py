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
    return _describe_onnx(model, shape, runs)


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


def _flops(proto, inputs, shape) -> tuple[int | None, int, list[int] | None]:
    import onnx

    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # do not touch the caller's copy
    graph_inputs = [vi for vi in proto.graph.input if vi.name in {v.name for v in inputs}]
    if len(graph_inputs) != 1:
        return None, 0, None
    dims = graph_inputs[0].type.tensor_type.shape.dim
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    fixed = list(shape) if shape and len(shape) == len(declared) else [d or 1 for d in declared]
    if any(d is None for d in declared) and not shape:
        return None, 0, None
    for d, v in zip(dims, fixed):
        d.Clear()
        d.dim_value = int(v)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        d = [x.dim_value if x.HasField("dim_value") else None for x in vi.type.tensor_type.shape.dim]
        if d and all(v is not None and v > 0 for v in d):
            shapes[vi.name] = d
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = list(a.t.dims)
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


def _macs(node, shapes) -> int | None:
    out = shapes.get(node.output[0])
    ins = [shapes.get(i) for i in node.input[:2]]
    if out is None or any(s is None for s in ins):
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
