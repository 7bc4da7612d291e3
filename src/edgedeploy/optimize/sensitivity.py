"""Which layers hurt when quantized: per-tensor error between float and quantized activations.

Both models run on ONNX Runtime (which runs QDQ models) with every node output of the float
model that also exists in the quantized one exposed as an extra output (quantizers keep the
float tensor names and add Q/DQ after them). For each weight layer (Conv, ConvTranspose,
MatMul, Gemm) the error of its output is the noise-to-signal ratio
``||q - f||² / ||f||²`` over the samples (SQNR = -10·log10 of it); the layer's own
*contribution* is that error minus the error already present at its input. Layers are then
kept in float greedily, largest contribution first (:func:`rank`).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid")


@dataclass(frozen=True)
class LayerError:
    """One layer: name, op type, SQNR of its output in dB, and the error it adds itself (ratio)."""

    name: str
    op: str
    sqnr_db: float
    contribution: float

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "sqnr_db": round(self.sqnr_db, 2),
                "contribution": float(f"{self.contribution:.3g}")}


def sqnr_db(noise_ratio: float) -> float:
    return math.inf if noise_ratio <= 0 else -10 * math.log10(noise_ratio)


def _with_outputs(path: Path, names: Sequence[str], out: Path) -> None:
    m = onnx.load(str(path))
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    onnx.save(m, str(out))


def _dequantized(qm: onnx.ModelProto, tensors: list[str]) -> dict[str, str]:
    """Tensor → the name of its value as the next layer sees it: the DequantizeLinear output where the
    tensor goes through QuantizeLinear → DequantizeLinear (a fused Relu lives in that clamp), else itself."""
    users: dict[str, list] = {}
    for n in qm.graph.node:
        for i in n.input[:1]:
            users.setdefault(i, []).append(n)
    out = {}
    for t in tensors:
        q = users.get(t, [])
        dq = users.get(q[0].output[0], []) if len(q) == 1 and q[0].op_type == "QuantizeLinear" else []
        out[t] = dq[0].output[0] if dq and dq[0].op_type == "DequantizeLinear" else t
    return out


def _run_all(path: Path, feeds: list[dict], names: list[str], threads: int) -> list[dict]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # keep tensors, skip layout fusions
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [dict(zip(names, sess.run(names, f))) for f in feeds]


def layer_errors(float_path: Path, quant_path: Path, feeds: list[dict], *, threads: int = 2,
                 max_samples: int = 8) -> list[LayerError]:
    """Per-layer error of the quantized model against the float one on ``feeds`` (at most ``max_samples``)."""
    fm, qm = onnx.load(str(float_path), load_external_data=False), onnx.load(str(quant_path), load_external_data=False)
    q_tensors = {o for n in qm.graph.node for o in n.output}
    layers = [n for n in fm.graph.node if n.op_type in WEIGHT_OPS]
    tensors = sorted({t for n in fm.graph.node for t in n.output if t in q_tensors}
                     | {n.input[0] for n in layers if n.input[0] in q_tensors})
    feeds = feeds[:max_samples]
    qmap = _dequantized(qm, tensors)
    with tempfile.TemporaryDirectory(prefix=f"edgedeploy-sens-{os.getpid()}-") as tmp:
        fp, qp = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        _with_outputs(float_path, tensors, fp)
        _with_outputs(quant_path, [qmap[t] for t in tensors], qp)
        fo = _run_all(fp, feeds, tensors, threads)
        qo = [{t: r[qmap[t]] for t in tensors} for r in _run_all(qp, feeds, [qmap[t] for t in tensors], threads)]
    noise = {}
    for t in tensors:
        num = sum(float(np.sum((q[t].astype(np.float64) - f[t]) ** 2)) for f, q in zip(fo, qo))
        den = sum(float(np.sum(f[t].astype(np.float64) ** 2)) for f in fo)
        noise[t] = num / den if den > 0 else 0.0
    users: dict[str, list] = {}
    for n in fm.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    out = []
    for n in layers:
        t = n.output[0]
        # A quantizer may fuse the activation into the layer (Conv+Relu): follow it to a tensor both models have.
        while t not in noise and len(users.get(t, [])) == 1 and users[t][0].op_type in ACTIVATIONS:
            t = users[t][0].output[0]
        if t not in noise:
            continue
        err = noise[t]
        out.append(LayerError(n.name, n.op_type, sqnr_db(err), err - noise.get(n.input[0], 0.0)))
    return out


def rank(errors: Sequence[LayerError]) -> list[LayerError]:
    """Layers in the order they should go back to float: largest own contribution first."""
    return sorted(errors, key=lambda e: e.contribution, reverse=True)


def float_counts(n_layers: int, max_share: float) -> list[int]:
    """How many layers to keep in float at each greedy step: 1, 2, 4, ... up to ``max_share`` of them."""
    cap = max(1, int(n_layers * max_share))
    counts, k = [], 1
    while k < cap:
        counts.append(k)
        k *= 2
    return [*counts, cap]
