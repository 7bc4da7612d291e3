"""INT8 for OpenVINO with NNCF (``nncf.quantize``), written as a QDQ ONNX model.

NNCF places QuantizeLinear/DequantizeLinear where OpenVINO's CPU plugin fuses them into its
INT8 kernels (activations of every Conv/MatMul input and of eltwise Add where it pays, weights
per channel) and applies fast bias correction. Quantizing the ONNX model rather than the
OpenVINO IR keeps the result portable — one ``.onnx`` file — and OpenVINO runs it as INT8
exactly as it runs NNCF's IR (measured: same latency within noise on the zoo models).

One repair is made to NNCF's output (:func:`unsigned_concat_inputs`): OpenVINO 2026.4's CPU plugin
mis-executes signed INT8 (zero point 0) activation Q/DQ pairs that feed a ``Concat`` — the
PicoDet neck's outputs fell to SQNR ~0 dB and its hmean from 88.4 to 0.0, while ONNX Runtime ran
the same file at ~17 dB. Those quantizers are rewritten as UINT8 with zero point 128: the same
256 levels at the same scale, so the arithmetic is unchanged on every engine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnx

from edgedeploy.errors import EngineMissing, UserError
from edgedeploy.optimize.calibration import CalibrationSet

log = logging.getLogger(__name__)


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def quantize(model: Path, out: Path, calib: CalibrationSet, *, exclude: Sequence[str] = ()) -> None:
    """NNCF post-training INT8 of the ONNX file ``model`` into ``out``; nodes named in ``exclude`` stay float."""
    if not available():
        raise EngineMissing("NNCF is not installed: pip install nncf==3.4.0 (OpenVINO's quantizer), "
                            "or use --engine onnxruntime")
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # "default": NNCF's own choice (mean over samples of each sample's min/max, robust to outliers).
    estimator = {"default": None, "minmax": RangeEstimatorParametersSet.MINMAX,
                 "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE,
                 "entropy": RangeEstimatorParametersSet.HISTOGRAM}[calib.method]
    logging.getLogger("nncf").setLevel(logging.ERROR)
    try:
        q = nncf.quantize(
            onnx.load(str(model)), nncf.Dataset(calib.feeds), subset_size=len(calib.feeds),
            preset=nncf.QuantizationPreset.PERFORMANCE, fast_bias_correction=True,
            ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False) if exclude else None,
            advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=estimator)
            if estimator else None,
        )
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"NNCF could not quantize the model: {str(exc).splitlines()[0][:300]}") from None
    unsigned_concat_inputs(q)
    compress_float_weights(q)
    onnx.save(q, str(out))


def unsigned_concat_inputs(model: onnx.ModelProto) -> int:
    """Rewrite the per-tensor signed activation quantizers (INT8, zero point z) whose dequantized
    tensor feeds a ``Concat`` as UINT8 with zero point z + 128, in place; returns how many.

    Both encode ``scale * (q - zero_point)`` on the same 256 levels, so results are identical on an
    engine that follows the ONNX spec. OpenVINO's CPU plugin (2026.4) does not, for the signed form
    in front of a Concat (an 18-node reproduction is in ``tests/optimize/test_quantize_openvino.py``):
    without this, INT8 of PicoDet collapses on OpenVINO. Only these quantizers change, since UINT8 with a zero point costs
    OpenVINO a little speed elsewhere (measured ~10% on PP-OCRv6 det when applied to all).
    """
    import numpy as np
    from onnx import numpy_helper

    from edgedeploy.optimize.graph import index

    g = model.graph
    inits, producer, users = index(g)
    types = {v.name: v for v in g.value_info}
    done = 0
    for concat in (n for n in g.node if n.op_type == "Concat"):
        for t in concat.input:
            dq = producer.get(t)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear" or len(q.input) < 3 or q.input[0] in inits:
                continue
            zp = inits.get(q.input[2])
            if zp is None or zp.data_type != onnx.TensorProto.INT8 or len(zp.dims) or q.input[1] not in inits:
                continue
            dqs = users.get(q.output[0], [])
            if not all(d.op_type == "DequantizeLinear" and d.input[2] == q.input[2] for d in dqs):
                continue
            name = f"{q.input[2]}_u8"
            value = (numpy_helper.to_array(zp).astype(np.int16) + 128).astype(np.uint8)
            g.initializer.append(numpy_helper.from_array(value, name))
            for node in (q, *dqs):
                node.input[2] = name
            if q.output[0] in types:
                types[q.output[0]].type.tensor_type.elem_type = onnx.TensorProto.UINT8
            done += 1
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.data_type == onnx.TensorProto.INT8 and t.name not in used]:
        g.initializer.remove(t)
    return done


def compress_float_weights(model: onnx.ModelProto, min_elements: int = 256) -> int:
    """Store the weights NNCF leaves in float (e.g. squeeze-excitation 1x1 convs, which it does not
    quantize because INT8 does not pay there) as INT8 + per-channel scale + DequantizeLinear.

    Arithmetic stays float (engines fold the DequantizeLinear into the constant when compiling),
    so speed is unchanged; the file shrinks by 4x for those weights. Returns how many were stored so.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    users: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    done = 0
    new_nodes = []
    for node in g.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2:
            continue
        name = node.input[1]
        t = inits.get(name)
        if t is None or t.data_type != onnx.TensorProto.FLOAT or users.get(name) != 1:
            continue
        w = numpy_helper.to_array(t)
        if w.size < min_elements or w.ndim < 2 or (node.op_type == "Gemm" and any(
                a.name == "transB" and a.i for a in node.attribute)):
            continue
        axis = 0 if node.op_type == "Conv" else w.ndim - 1
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        scale = (np.abs(w).max(axis=reduce) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        g.initializer.remove(t)
        g.initializer.extend([numpy_helper.from_array(q, f"{name}_i8"), numpy_helper.from_array(scale, f"{name}_i8_scale"),
                              numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_i8_zp")])
        new_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_i8", f"{name}_i8_scale", f"{name}_i8_zp"],
                                          [name], name=f"{name}_dequantize", axis=axis))
        done += 1
    if new_nodes:
        nodes = [*new_nodes, *g.node]
        del g.node[:]
        g.node.extend(nodes)
    return done
