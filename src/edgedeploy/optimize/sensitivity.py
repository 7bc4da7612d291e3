"""Which layers hurt when quantized: per-tensor error between float and quantized activations.

Both models run on ONNX Runtime (which runs QDQ models) with every node output of the float
model that also exists in the quantized one exposed as an extra output (quantizers keep the
float tensor names and add Q/DQ after them). For each node of a type the quantizers touch
(:data:`QUANT_OPS`: weight layers, and the eltwise/Concat/activation/attention ops whose
outputs get their own quantizers — a detector's box head scales sigmoid outputs to pixels with
Mul/Add and joins them to scores in a Concat) the error of its output is the noise-to-signal ratio
``||q - f||² / ||f - mean||²`` over the samples (SQNR = -10·log10 of it; the mean is the
channel's over all samples, so a common offset does not hide the error in what varies),
taken per feature channel and averaged (:func:`channel_sums`): a tensor that joins pixel coordinates (hundreds) and scores
(0..1) would otherwise hide the scores' error under the coordinates' energy; the layer's own
*contribution* is that error minus the largest error already present at its inputs. Layers are then
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
QUANT_OPS = (*WEIGHT_OPS, "Add", "Sub", "Mul", "Div", "Concat", "Sigmoid", "Softmax", "Resize", "AveragePool",
             "GlobalAveragePool", "MaxPool", "LayerNormalization", "Pow", "Slice", "Split", "Transpose", "Reshape",
             "Flatten", "Gather", "Where", "ReduceMean")
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


def feature_axis(ndim: int) -> int | None:
    """The axis whose entries are separate features: channels of NCHW activations, the last axis of
    token/cell x feature tensors and of logits; None (the whole tensor) for anything else."""
    return 1 if ndim == 4 else -1 if ndim in (2, 3) else None


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    axis = feature_axis(ndim)
    return tuple(range(ndim)) if axis is None else tuple(i for i in range(ndim) if i != axis % ndim)


def channel_sums(f: np.ndarray, q: np.ndarray, center: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per feature channel: (sum of squared error, sum of squared reference minus ``center``), float64."""
    reduce = _reduce_axes(f.ndim)
    f64, d = f.astype(np.float64), q.astype(np.float64) - f
    if not isinstance(center, float):
        center = float(center[0]) if feature_axis(f.ndim) is None else np.expand_dims(center, reduce)
    return np.atleast_1d(np.sum(d ** 2, axis=reduce)), np.atleast_1d(np.sum((f64 - center) ** 2, axis=reduce))


def channel_means(fs: list[np.ndarray]) -> np.ndarray:
    """Per feature channel, the mean over every sample and position (float64)."""
    reduce = _reduce_axes(fs[0].ndim)
    n = sum(int(np.prod([f.shape[i] for i in reduce])) for f in fs)
    return np.atleast_1d(sum(np.sum(f.astype(np.float64), axis=reduce) for f in fs) / max(n, 1))


def channel_noise(num: np.ndarray, den: np.ndarray) -> float:
    """Mean noise-to-signal ratio over the channels that carry signal."""
    live = den > 0
    return float(np.mean(num[live] / den[live])) if live.any() else 0.0


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
    layers = [n for n in fm.graph.node if n.op_type in QUANT_OPS]
    tensors = sorted({t for n in fm.graph.node for t in n.output if t in q_tensors}
                     | {i for n in layers for i in n.input if i in q_tensors})
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
        # Error against each channel's variation over the samples, not its energy: a pooled feature
        # with a large common offset and small differences between images (what a classifier's
        # decision rests on) is ruined by a quantization step that is small next to the offset.
        center = channel_means([f[t] for f in fo]) if len({f[t].shape for f in fo}) == 1 else 0.0
        sums = [channel_sums(f[t], q[t], center) for f, q in zip(fo, qo) if f[t].shape == q[t].shape]
        if sums:
            noise[t] = channel_noise(sum(s[0] for s in sums), sum(s[1] for s in sums))
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
        out.append(LayerError(n.name, n.op_type, sqnr_db(err), err - max((noise.get(i, 0.0) for i in n.input),
                                                                            default=0.0)))
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
