"""An ONNX convolutional network as a trainable ``torch.nn.Module``, and back.

Pruning and distillation need gradients, and our models arrive as ONNX files (the zoo's, or
paddle2onnx's output) with no training code beside them. :class:`TorchGraph` runs the ONNX
graph node by node with torch operators: every Conv/ConvTranspose becomes a real
``nn.Conv2d``/``nn.ConvTranspose2d`` holding the weights, everything else is a functional call.
Tracing that forward through autograd is how torch-pruning finds which channels are coupled
(residual adds, concatenations, squeeze-excitation products).

The operators of convolutional networks are covered — fully convolutional ones (PP-OCR det, U-Nets),
classifiers (Flatten/Reshape to a Gemm or constant-weight MatMul head, which becomes an ``nn.Linear``,
then Softmax) and detection heads (Split, Reshape, Transpose into several outputs); any other operator
is refused by name (``onnx2torch`` covers more but imports torchvision, which has no CPU build here).
BatchNormalization, Shape/Slice arithmetic and Constant nodes are folded by the graph cleaning
(:func:`edgedeploy.optimize.graph.optimize_graph`) before a graph gets here.
:meth:`TorchGraph.fixed_channel_modules` names the layers whose output channels must stay (they make an
output, or feed an operator that reads channels by position). After pruning, :func:`write_back` puts
the new weights into the original graph.
"""

from __future__ import annotations


import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn

from edgedeploy.errors import UserError

_ELEMENTWISE = {"Add": torch.add, "Mul": torch.mul, "Sub": torch.sub, "Div": torch.div}
_UNARY = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Erf": torch.erf, "HardSwish": F.hardswish,
          "Tanh": torch.tanh, "Identity": lambda x: x}
SUPPORTED = sorted({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean",
                    "Resize", "Concat", "HardSigmoid", "Clip", "LeakyRelu", "Flatten", "Reshape", "Gemm", "MatMul",
                    "Softmax", "Split", "Transpose", *_ELEMENTWISE, *_UNARY})
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # the nodes whose weights become torch modules
LINEAR = ("Gemm", "MatMul")
# operators that read their input's channels by position (split sizes, a permutation, a normalisation
# over them): the layers feeding them keep their channels, as do those making the outputs
POSITIONAL = ("Split", "Transpose", "Softmax")


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(at: dict, kernel: list[int]) -> tuple[list[int], str | None]:
    """ONNX pads [t, l, b, r] and auto_pad → (the pads, 'same' when auto_pad asks for it)."""
    auto = at.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return [0] * 4, auto
    return list(at.get("pads", [0] * 2 * len(kernel))), None


def _explicit_pads(x: torch.Tensor, at: dict, kernel: list[int], stride: list[int], dil: list[int]):
    """Pads [t, l, b, r] that torch's symmetric ``padding`` cannot express (auto_pad SAME, uneven
    pads), else None. SAME pads so that out = ceil(in / stride), the odd one at the end for SAME_UPPER."""
    pads, auto = _pads(at, kernel)
    if auto:
        eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
        # (ceil(s/st) - 1) * st + k - s, the total padding SAME needs
        extra = [max(k - (int(s) % st or st), 0) for s, st, k in zip(x.shape[2:], stride, eff)]
        lo = [e // 2 if auto == "SAME_UPPER" else e - e // 2 for e in extra]
        return [lo[0], lo[1], extra[0] - lo[0], extra[1] - lo[1]]
    return pads if (pads[0] != pads[2] or pads[1] != pads[3]) else None


class TorchGraph(nn.Module):
    """The ONNX graph of ``model`` (one float input, float outputs) as a torch module."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        g = model.graph
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        unsupported = sorted({n.op_type for n in g.node if n.op_type not in SUPPORTED and n.op_type != "Constant"})
        if unsupported:
            raise UserError(f"pruning covers convolutional networks (detectors, segmenters, classifiers); this one uses "
                            f"{', '.join(unsupported)}, which it does not (supported: {', '.join(SUPPORTED)}); "
                            "optimise it without --prune")
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.input_names = [i.name for i in g.input if i.name not in inits]
        self.output_names = [o.name for o in g.output]
        self.convs = nn.ModuleDict()
        self.steps: list[tuple] = []  # (op, inputs, outputs, attrs, module key)
        self._consts: dict[str, torch.Tensor] = {}
        for i, node in enumerate(g.node):
            at = _attrs(node)
            if node.op_type == "Constant":
                self._consts[node.output[0]] = torch.from_numpy(numpy_helper.to_array(at["value"]).copy())
                continue
            key = None
            if node.op_type in WEIGHTED:
                key = f"n{i}"
                self.convs[key] = self._linear(node, at, inits) if node.op_type in LINEAR else self._conv(node, at, inits)
                ins = [node.input[0]]
            else:
                ins = list(node.input)
            self.steps.append((node.op_type, ins, list(node.output), at, key))
        used = {n for s in self.steps for n in s[1]}
        for name, arr in inits.items():
            if name in used:
                self._consts[name] = torch.from_numpy(np.array(arr, copy=True))
        for op, ins, _, _, _ in self.steps:
            if op == "Reshape" and ins[1] not in self._consts:
                raise UserError(f"a Reshape takes its shape from computed tensor {ins[1]!r}; pruning covers constant "
                                "shapes (the graph cleaning folds Shape/Slice arithmetic where the input size is fixed)")
            if op == "Split" and len(ins) > 1 and ins[1] and ins[1] not in self._consts:
                raise UserError(f"a Split takes its sizes from computed tensor {ins[1]!r}; pruning covers constant sizes")

    def _flatten(self, shape_name: str) -> bool:
        """Whether a Reshape to the constant ``shape_name`` is a classifier's flatten (batch x features)."""
        return self._consts[shape_name].numel() == 2

    def _upstream(self, names: list[str], *, past_modules: bool) -> set[str]:
        """Keys of the modules that the tensors ``names`` are computed from: the nearest ones only, or (with
        ``past_modules``) all of them."""
        producer = {o: s for s in self.steps for o in s[2]}
        todo, keys, seen = list(names), set(), set()
        while todo:
            name = todo.pop()
            if name in seen or name not in producer:
                continue
            seen.add(name)
            _, ins, _, _, key = producer[name]
            keys |= {key} if key is not None else set()
            if key is None or past_modules:
                todo.extend(ins)
        return keys

    def fixed_channel_modules(self) -> set[str]:
        """Keys of the modules whose output channels pruning must keep: those making a model output, and
        those feeding (through operators without weights) a :data:`POSITIONAL` operator or a Reshape other
        than a flatten, which reads channels by position."""
        return self._upstream(list(self.output_names) + [
            ins[0] for op, ins, *_ in self.steps if op in POSITIONAL or (op == "Reshape" and not self._flatten(ins[1]))],
            past_modules=False)

    def head_modules(self) -> set[str]:
        """Keys of the modules that do not reach every output (a detector's per-level head towers); empty
        with one output."""
        reach = [self._upstream([out], past_modules=True) for out in self.output_names]
        return set().union(*reach) - set.intersection(*reach)

    def check_prunable(self) -> None:
        """Refuse graphs with per-channel constants outside convolutions (an un-fused BatchNorm, a
        channel scale): pruning would change the channels they apply to."""
        for op, ins, _, _, key in self.steps:
            for name in ins if key is None else ():
                t = self._consts.get(name)
                if t is not None and t.ndim >= 2 and max(t.shape[1:], default=1) > 1:
                    raise UserError(f"{op} input {name!r} is a per-channel constant; pruning covers graphs whose "
                                    "channel-wise weights are all in convolutions (fuse BatchNorm first)")

    @staticmethod
    def _linear(node, at: dict, inits: dict) -> nn.Linear:
        """Gemm with its weight (and bias) as initializers, alpha = beta = 1, A not transposed → nn.Linear;
        MatMul with a constant 2-D weight (in, out) → nn.Linear without bias."""
        if node.op_type == "MatMul":
            w = inits.get(node.input[1])
            if w is None or np.asarray(w).ndim != 2:
                raise UserError(f"MatMul {node.name!r} multiplies by "
                                f"{'a computed tensor' if w is None else f'a {np.asarray(w).ndim}-D constant'}; "
                                "pruning covers MatMul by a constant 2-D weight (a Linear layer)")
            m = nn.Linear(w.shape[0], w.shape[1], bias=False)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(w).T)))
            return m
        if node.input[1] not in inits or (len(node.input) > 2 and node.input[2] and node.input[2] not in inits):
            raise UserError(f"Gemm {node.name!r} takes its weights from another node; pruning needs them as initializers")
        if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
            raise UserError(f"Gemm {node.name!r} uses transA/alpha/beta, which pruning does not cover")
        w = np.array(inits[node.input[1]])
        w = w if at.get("transB", 0) else w.T  # nn.Linear holds (out, in)
        b = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if b is not None and np.asarray(b).ndim != 1:
            raise UserError(f"Gemm {node.name!r} has a {np.asarray(b).ndim}-D bias; pruning covers a per-output one")
        m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if b is not None:
                m.bias.copy_(torch.from_numpy(np.array(b)))
        return m

    @staticmethod
    def _conv(node, at: dict, inits: dict) -> nn.Module:
        if node.input[1] not in inits:
            raise UserError(f"{node.op_type} {node.name!r} takes its weights from another node; pruning needs "
                            f"them as initializers (run the graph optimisation first)")
        w = inits[node.input[1]]
        b = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        kernel = list(w.shape[2:])
        if len(kernel) != 2:
            raise UserError(f"{node.op_type} {node.name!r} is {len(kernel)}-D; pruning covers 2-D convolutions")
        pads, auto = _pads(at, kernel)
        if node.op_type == "ConvTranspose" and (auto or pads[0] != pads[2] or pads[1] != pads[3]):
            raise UserError(f"ConvTranspose {node.name!r} pads by auto_pad or unevenly, which pruning does not cover")
        if auto or pads[0] != pads[2] or pads[1] != pads[3]:  # an explicit F.pad runs first (see forward)
            pads = [0, 0, 0, 0]
        groups, stride, dil = at.get("group", 1), at.get("strides", [1, 1]), at.get("dilations", [1, 1])
        if node.op_type == "Conv":
            m = nn.Conv2d(w.shape[1] * groups, w.shape[0], kernel, stride, pads[:2], dil, groups, bias=b is not None)
        else:
            m = nn.ConvTranspose2d(w.shape[0], w.shape[1] * groups, kernel, stride, pads[:2],
                                   at.get("output_padding", [0, 0]), groups, bias=b is not None, dilation=dil)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.array(w)))
            if b is not None:
                m.bias.copy_(torch.from_numpy(np.array(b)))
        return m

    def forward(self, x: torch.Tensor):  # noqa: C901 - one branch per operator
        env: dict[str, torch.Tensor] = {self.input_names[0]: x}

        def get(name: str):
            return env[name] if name in env else self._consts[name]

        for op, ins, outs, at, key in self.steps:
            if key is not None and op in LINEAR:
                y = self.convs[key](env[ins[0]])
            elif key is not None:
                x_in = env[ins[0]]
                if op == "Conv":
                    conv = self.convs[key]
                    pads = _explicit_pads(x_in, at, list(conv.kernel_size), list(conv.stride), list(conv.dilation))
                    if pads is not None:
                        x_in = F.pad(x_in, (pads[1], pads[3], pads[0], pads[2]))
                y = self.convs[key](x_in)
            elif op in _ELEMENTWISE:
                y = _ELEMENTWISE[op](get(ins[0]), get(ins[1]))
            elif op in _UNARY:
                y = _UNARY[op](get(ins[0]))
            elif op == "HardSigmoid":
                y = torch.clamp(get(ins[0]) * at.get("alpha", 0.2) + at.get("beta", 0.5), 0.0, 1.0)
            elif op == "LeakyRelu":
                y = F.leaky_relu(get(ins[0]), at.get("alpha", 0.01))
            elif op == "Clip":
                lo = get(ins[1]) if len(ins) > 1 and ins[1] else None
                hi = get(ins[2]) if len(ins) > 2 and ins[2] else None
                y = torch.clamp(get(ins[0]), None if lo is None else float(lo), None if hi is None else float(hi))
            elif op == "GlobalAveragePool":
                y = get(ins[0]).mean(dim=(2, 3), keepdim=True)
            elif op == "ReduceMean":
                axes = at.get("axes") or [int(a) for a in get(ins[1]).tolist()]
                y = get(ins[0]).mean(dim=tuple(axes), keepdim=bool(at.get("keepdims", 1)))
            elif op == "Concat":
                y = torch.cat([get(i) for i in ins], dim=at["axis"])
            elif op == "Flatten":
                y = torch.flatten(get(ins[0]), at.get("axis", 1))
            elif op == "Reshape":
                y = self._reshape(get(ins[0]), ins[1], at)
            elif op == "Transpose":
                x_in = get(ins[0])
                y = x_in.permute(*(at.get("perm") or range(x_in.ndim - 1, -1, -1)))
            elif op == "Softmax":
                y = self._softmax(get(ins[0]), at)
            elif op == "Split":
                x_in, axis = get(ins[0]), at.get("axis", 0)
                sizes = at.get("split") or (get(ins[1]).tolist() if len(ins) > 1 and ins[1] else None)
                n = len(outs)
                y = torch.split(x_in, [int(v) for v in sizes] if sizes else -(-x_in.shape[axis] // n), dim=axis)
            elif op in ("MaxPool", "AveragePool"):
                y = self._pool(op, get(ins[0]), at)
            elif op == "Resize":
                y = self._resize(get(ins[0]), [get(i) if i else None for i in ins[1:]], at)
            else:  # pragma: no cover - refused in __init__
                raise UserError(f"operator {op} is not supported")
            if isinstance(y, tuple):
                env.update(zip(outs, y))
            else:
                env[outs[0]] = y
        outs = [env[n] for n in self.output_names]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _reshape(self, x: torch.Tensor, shape_name: str, at: dict) -> torch.Tensor:
        """A flatten keeps the batch and puts the rest (whose size pruning changes) in one axis; any other
        Reshape takes its constant shape, the first entry being the batch (distillation runs batches of a
        model exported for one image); 0 copies the input's dimension unless ``allowzero``."""
        if self._flatten(shape_name):
            return x.reshape(x.shape[0], -1)
        shape = [int(v) for v in self._consts[shape_name].tolist()]
        if not at.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return x.reshape(x.shape[0], *shape[1:])

    def _softmax(self, x: torch.Tensor, at: dict) -> torch.Tensor:
        """Softmax over ``axis`` (opset 13 on); before opset 13, over all axes from ``axis`` on, flattened."""
        axis = at.get("axis", -1 if self.opset >= 13 else 1)
        if self.opset >= 13:
            return torch.softmax(x, dim=axis)
        return torch.softmax(x.reshape(*x.shape[:axis % x.ndim], -1), dim=-1).reshape(x.shape)

    @staticmethod
    def _pool(op: str, x: torch.Tensor, at: dict) -> torch.Tensor:
        kernel, stride = list(at["kernel_shape"]), list(at.get("strides", [1, 1]))
        pads = _explicit_pads(x, at, kernel, stride, [1, 1]) or _pads(at, kernel)[0]
        fill = float("-inf") if op == "MaxPool" else 0.0
        if any(pads):
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=fill)
        if op == "MaxPool":
            return F.max_pool2d(x, kernel, stride, ceil_mode=bool(at.get("ceil_mode", 0)))
        return F.avg_pool2d(x, kernel, stride, ceil_mode=bool(at.get("ceil_mode", 0)))

    @staticmethod
    def _resize(x: torch.Tensor, extra: list, at: dict) -> torch.Tensor:
        mode = at.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        scales = extra[1] if len(extra) > 1 and extra[1] is not None and extra[1].numel() else None
        sizes = extra[2] if len(extra) > 2 and extra[2] is not None and extra[2].numel() else None
        kw = {"size": [int(s) for s in sizes.tolist()[2:]]} if sizes is not None else \
             {"scale_factor": [float(s) for s in scales.tolist()[2:]]}
        if mode == "nearest":
            return F.interpolate(x, mode="nearest", **kw)
        return F.interpolate(x, mode="bilinear", align_corners=False, **kw)


def write_back(module: TorchGraph, model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (the graph ``module`` was built from) with the module's current weights, whatever
    their channel counts now: the same nodes, names and attributes, so engines see the graph they
    were tuned for (no exporter-made Pad/Shape nodes). Conv ``group`` follows the module's groups
    (a pruned depthwise conv has fewer). Other nodes must not hold per-channel constants."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    users: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    module.check_prunable()
    for node, (op, _, _, _, key) in zip((n for n in g.node if n.op_type != "Constant"), module.steps):
        if key is None:
            continue
        conv = module.convs[key]
        tensors = [conv.weight] + ([conv.bias] if conv.bias is not None else [])
        for slot, tensor in enumerate(tensors, start=1):
            name = node.input[slot]
            arr = tensor.detach().cpu().numpy().astype(np.float32)
            if (op == "MatMul" or (op == "Gemm" and not _attrs(node).get("transB", 0))) and slot == 1:
                arr = np.ascontiguousarray(arr.T)
            if users.get(name, 0) > 1:  # shared by several nodes (an exporter's dedup): untie, one copy per node
                users[name] -= 1
                name = f"{name}__{node.name or key}"
                node.input[slot] = name
                g.initializer.append(numpy_helper.from_array(arr, name))
                continue
            init = next(t for t in g.initializer if t.name == name)
            init.CopyFrom(numpy_helper.from_array(arr, name))
        for a in node.attribute:
            if a.name == "group":
                a.i = conv.groups
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(helper.get_attribute_value(n.attribute[0]))
    flattens = (n for n in g.node if n.op_type == "Reshape" and np.asarray(consts[n.input[1]]).size == 2)
    for i, node in enumerate(flattens):  # a flatten: its feature count changed; the batch stays (-1 → 0: copied)
        first = int(np.asarray(consts[node.input[1]]).ravel()[0])
        node.input[1] = f"{node.input[1]}__flatten{i}"
        g.initializer.append(numpy_helper.from_array(np.array([first if first != -1 else 0, -1], np.int64),
                                                     node.input[1]))
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for t in [t for t in g.initializer if t.name not in used]:  # the flattens' old shapes
        g.initializer.remove(t)
    del g.value_info[:]  # channel counts changed: the old shapes would mislead quantizers and engines
    return onnx.shape_inference.infer_shapes(out)
