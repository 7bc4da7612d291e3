"""NVIDIA Jetson: an explicitly quantized (QDQ) ONNX model plus what TensorRT needs to build it there.

The artefact: ``model.qdq.onnx`` (symmetric INT8, per-channel weights: the form TensorRT's
explicit quantization takes), ``trt_settings.json`` (precision, workspace, timing cache, shapes),
``trt_build.py`` (a standalone builder script reading those settings), the equivalent ``trtexec``
command line in ``trtexec.txt``, and the calibration table (``calibration.flatbuffers`` /
``.cache`` / ``.json``, ONNX Runtime's TensorRT-provider format) for users who run the FP32 model
under ORT's TensorRT provider instead. Without an NVIDIA GPU the QDQ model's accuracy is checked on
ONNX Runtime's CPU kernels — a stand-in, and labelled so; TensorRT's own kernels may round differently.

Recipe (measured on PicoDet layout, hmean 0.937 FP32): the model is first cleaned
(:func:`edgedeploy.optimize.graph.optimize_graph`: Constant weights → initializers, BatchNorm fused),
else its Conv weights are quantized per tensor as if they were activations; activation ranges are
the 99.99th percentile, because min/max ranges on the early layers (up to 104 where the bulk is
below 2) round most values to zero (hmean 0.000 with min/max, 0.178 with the percentile alone).
Where that is still over budget, the detector's head (everything after the last Conv on each
output's path, and that Conv) and the first Convs of the backbone, where the noise enters, stay
in float (:func:`float_front`; TensorRT runs them in FP16): PicoDet needs head + first 40 of 102
Convs for 0.931.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.optimize.calibration import CalibrationSet
from edgedeploy.util import atomic_write

CALIB_PERCENTILE = 99.99
WORKSPACE_MB = 1024  # Jetson boards share 4-8 GB between CPU and GPU: a 1 GB build workspace leaves room
BUILDER = Path(__file__).with_name("trt_build.py")


def gpu_unavailable() -> str | None:
    """None when a TensorRT build can run here; else why not."""
    import importlib.util

    if not Path("/dev/nvidia0").exists() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (TensorRT builds engines only on one)"
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt wheel is not installed (pip install tensorrt)"
    return None


def prepare(src: Path, out: Path) -> Path:
    """``src`` cleaned for quantization into ``out`` (weights as initializers, BatchNorm fused, nodes
    named): the float model whose node names :func:`quantize_qdq`'s ``exclude`` and :func:`float_front` use."""
    import onnx

    from edgedeploy.optimize.graph import optimize_graph

    model, _ = optimize_graph(onnx.load(str(src)))
    onnx.save(model, str(out))
    return out


def float_front(prepared: Path, first_convs: int) -> list[str]:
    """Node names to keep in float: the head (each output's producers back to, and including, the last
    Conv on its path) and the first ``first_convs`` Convs in graph order (the graph is topologically sorted)."""
    import onnx

    graph = onnx.load(str(prepared), load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    head: dict[str, None] = {}
    todo = [o.name for o in graph.output]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in head:
            continue
        head[node.name] = None
        if node.op_type != "Conv":
            todo += list(node.input)
    convs = [n.name for n in graph.node if n.op_type == "Conv"][:first_convs]
    return list(dict.fromkeys([*head, *convs]))


def conv_count(prepared: Path) -> int:
    import onnx

    return sum(n.op_type == "Conv" for n in onnx.load(str(prepared), load_external_data=False).graph.node)


def quantize_qdq(src: Path, out: Path, calib: CalibrationSet, table_dir: Path, exclude: list[str] = ()) -> None:
    """Symmetric INT8 QDQ (TensorRT takes zero-point 0 only) of ``src`` (a :func:`prepare`d model) into
    ``out``, activation ranges at the :data:`CALIB_PERCENTILE`; the calibrated ranges also go to
    ``table_dir`` as ORT's TensorRT calibration table. Nodes in ``exclude`` get no Q/DQ: TensorRT runs
    them in FP16 (the engine is built with ``--int8 --fp16``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import load_tensors_data
    from onnxruntime.quantization.quant_utils import write_calibration_table

    ranges = table_dir / "calibration_ranges.json"
    try:
        quantize_static(str(src), str(out), calib.reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile, calibration_cache_path=ranges,
                        nodes_to_exclude=list(exclude),
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "CalibPercentile": CALIB_PERCENTILE})
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"onnxruntime could not quantize the model for TensorRT: {str(exc).splitlines()[0][:300]}; "
                        "deploy the FP16 engine instead (precision: fp16)") from None
    write_calibration_table(load_tensors_data(ranges).data, dir=str(table_dir))
    ranges.unlink()


def settings(onnx_name: str, shapes: dict[str, list[int]], precision: str) -> dict:
    return {"onnx": onnx_name, "engine": "model.plan", "precision": precision, "workspace_mb": WORKSPACE_MB,
            "timing_cache": "timing.cache", "shapes": shapes}


def trtexec_line(s: dict) -> str:
    """The trtexec command equivalent to ``trt_build.py`` with settings ``s``."""
    shapes = ",".join(f"{name}:{'x'.join(map(str, dims))}" for name, dims in s["shapes"].items())
    flags = {"int8": ["--int8", "--fp16"], "fp16": ["--fp16"], "fp32": []}[s["precision"]]
    return shlex.join(["trtexec", f"--onnx={s['onnx']}", f"--saveEngine={s['engine']}", *flags,
                       f"--memPoolSize=workspace:{s['workspace_mb']}M", f"--timingCacheFile={s['timing_cache']}",
                       f"--shapes={shapes}"])


def write(src: Path, out_dir: Path, *, shapes: dict[str, list[int]], precision: str,
          calib: CalibrationSet | None, exclude: list[str] = ()) -> list[Path]:
    """Write the Jetson artefact for ONNX ``src`` into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if precision == "int8":
        if calib is None:
            raise UserError("TensorRT INT8 needs calibration data; give calib or use precision fp16")
        model = out_dir / "model.qdq.onnx"
        prepared = prepare(src, out_dir / ".float.onnx")
        try:
            quantize_qdq(prepared, model, calib, out_dir, exclude)
        finally:
            prepared.unlink(missing_ok=True)
        files = [model, *(out_dir / f"calibration.{ext}" for ext in ("flatbuffers", "cache", "json"))]
    else:
        model = out_dir / "model.onnx"
        shutil.copyfile(src, model)
        files = [model]
    s = settings(model.name, shapes, precision)
    with atomic_write(out_dir / "trt_settings.json", "w") as f:
        f.write(json.dumps(s, indent=2) + "\n")
    with atomic_write(out_dir / "trtexec.txt", "w") as f:
        f.write(trtexec_line(s) + "\n")
    shutil.copyfile(BUILDER, out_dir / "trt_build.py")
    return [*files, out_dir / "trt_settings.json", out_dir / "trtexec.txt", out_dir / "trt_build.py"]
