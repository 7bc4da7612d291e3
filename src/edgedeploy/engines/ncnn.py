"""ncnn (Tencent): the CPU runtime most used on ARM boards, here on x86 too.

ncnn runs its own format (``.param`` text graph + ``.bin`` weights). ONNX models are converted
with pnnx (the ``pnnx`` wheel's binary, which reads ONNX directly and needs no torch), once per
model content and input shape, into edgedeploy's cache. ncnn's ``Mat`` holds one image (no
batch axis): a batch runs image by image on one shared ``Net``, as ncnn's own examples do.

Precision: "fp32" turns ncnn's FP16/BF16 storage and arithmetic off (its defaults on CPUs that
have them); "fp16" turns FP16 storage and arithmetic on where the CPU has them (ARMv8.2; on x86
ncnn stores FP16 and computes FP32).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgedeploy.engines.base import EngineOptions, Session, TensorSpec
from edgedeploy.errors import ConversionError, UserError

log = logging.getLogger(__name__)

CONVERT_TIMEOUT_S = 600
DEFAULT_SPATIAL = 224  # a dynamic spatial dimension is traced at this size; ncnn's layers take any size


def gpu_available() -> bool:
    return False  # ncnn's GPU path is Vulkan; edgedeploy runs ncnn on the CPU only


def pnnx_binary() -> Path:
    """The pnnx executable shipped in the ``pnnx`` wheel (found without importing it: its package imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("pnnx")
    exe = Path(spec.submodule_search_locations[0]) / "pnnx" if spec and spec.submodule_search_locations else None
    if exe is None or not exe.exists():
        from edgedeploy.errors import EngineMissing

        raise EngineMissing("ncnn needs pnnx to convert ONNX models: pip install --no-deps pnnx==20261020")
    return exe


def trace_shape(spec: TensorSpec, example: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """A concrete shape for conversion: the static dims, else the zoo example's, else 1 (batch) / 224."""
    if example is not None and len(example) == len(spec.shape):
        return tuple(int(d if d is not None else e) for d, e in zip(spec.shape, example))
    return tuple(int(d) if d is not None else (1 if i == 0 else DEFAULT_SPATIAL) for i, d in enumerate(spec.shape))


def convert(onnx_path: Path, shapes: list[tuple[int, ...]], out_dir: Path, *, fp16: bool = False) -> tuple[Path, Path]:
    """ONNX → ncnn ``model.ncnn.param`` / ``model.ncnn.bin`` in ``out_dir`` (written atomically: a
    finished directory or none). Raises :class:`ConversionError` naming what pnnx rejected."""
    out_dir = Path(out_dir)
    param, weights = out_dir / "model.ncnn.param", out_dir / "model.ncnn.bin"
    if param.exists() and weights.exists():
        return param, weights
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        src = work / "model.onnx"
        os.symlink(Path(onnx_path).resolve(), src)
        shape_arg = ",".join("[" + ",".join(map(str, s)) + "]" for s in shapes)
        args = [str(pnnx_binary()), str(src), f"inputshape={shape_arg}", f"fp16={int(fp16)}",
                *(f"{k}={work / v}" for k, v in (("pnnxparam", "m.pnnx.param"), ("pnnxbin", "m.pnnx.bin"),
                                                  ("pnnxpy", "m_pnnx.py"), ("pnnxonnx", "m.pnnx.onnx"),
                                                  ("ncnnparam", "model.ncnn.param"), ("ncnnbin", "model.ncnn.bin"),
                                                  ("ncnnpy", "m_ncnn.py")))]
        proc = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
        if proc.returncode != 0 or not (work / "model.ncnn.param").exists():
            raise ConversionError(f"pnnx could not convert {Path(onnx_path).name} to ncnn: {_pnnx_error(proc)}; "
                                  "run the model on onnxruntime instead")
        for extra in work.iterdir():
            if extra.name not in ("model.ncnn.param", "model.ncnn.bin"):
                extra.unlink()
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return param, weights


def _pnnx_error(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or "") + (proc.stdout or "")
    hit = re.search(r"(?im)^.*(not supported|unsupported|unknown|error).*$", text)
    return (hit.group(0).strip() if hit else text.strip().splitlines()[-1] if text.strip() else
            f"exit status {proc.returncode}")[:300]


def unsupported_layers(param: Path) -> list[str]:
    """Layer types in ``param`` that this ncnn build does not have (pnnx passes unknown ONNX ops through)."""
    import ncnn

    types = {line.split()[0] for line in param.read_text().splitlines()[2:] if line.strip()}
    return sorted(t for t in types if ncnn.layer_to_index(t) < 0)


class NcnnSession(Session):
    def __init__(self, net, inputs: list[TensorSpec], outputs: list[TensorSpec], *, param: Path):
        super().__init__(engine="ncnn", inputs=inputs, outputs=outputs, device="cpu")
        self._net = net
        self.param = param

    def _run(self, feeds):
        import ncnn

        batch = next(iter(feeds.values())).shape[0]
        per_image: list[list[np.ndarray]] = []
        for b in range(batch):
            with self._net.create_extractor() as ex:
                for i, spec in enumerate(self.inputs):
                    ex.input(f"in{i}", ncnn.Mat(np.ascontiguousarray(feeds[spec.name][b])).clone())
                outs = []
                for i in range(len(self.outputs)):
                    rc, mat = ex.extract(f"out{i}")
                    if rc != 0:
                        raise UserError(f"ncnn could not run the model on these inputs (extract out{i}: code {rc})")
                    outs.append(np.array(mat))
                per_image.append(outs)
        return [self._shape(np.stack([img[i] for img in per_image]), spec)
                for i, spec in enumerate(self.outputs)]

    @staticmethod
    def _shape(arr: np.ndarray, spec: TensorSpec) -> np.ndarray:
        # ncnn drops unit axes (a 1x4 row comes back as 4): give back the model's rank.
        dims = [-1 if d is None else d for d in spec.shape[1:]]
        if arr.ndim == len(spec.shape) or dims.count(-1) > 1:
            return arr
        try:
            return arr.reshape((arr.shape[0], *dims))
        except ValueError:
            return arr

    def clone_instance(self):
        # One ncnn Net serves any number of extractors at once: instances share it (and its weights).
        twin = NcnnSession(self._net, self.inputs, self.outputs, param=self.param)
        twin.notes = list(self.notes)
        return twin

    def _release(self):
        self._net = None


def _specs(onnx_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}

    def spec(v) -> TensorSpec:
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                     for d in v.type.tensor_type.shape.dim)
        elem = v.type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise UserError(f"ncnn takes float32 inputs and outputs; {v.name!r} is "
                            f"{onnx.TensorProto.DataType.Name(elem).lower()}: run the model on onnxruntime")
        return TensorSpec(v.name, np.dtype(np.float32), dims)

    return [spec(v) for v in model.graph.input if v.name not in inits], [spec(v) for v in model.graph.output]


def _net(param: Path, weights: Path, options: EngineOptions):
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = options.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    fp16 = options.precision == "fp16"
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
    net.opt.use_bf16_storage = False
    # ncnn's OpenMP workers spin 20 ms after each layer by default: on a box whose cores are busy with
    # anything else, the spinning threads starve each other (PP-LCNet, 2 threads, 2 loaded cores:
    # 810 ms a run instead of 2 ms). Sleep at once instead.
    net.opt.openmp_blocktime = 0
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        bad = unsupported_layers(param)
        raise ConversionError(f"ncnn could not load the converted model"
                              f"{': no ncnn layer for ' + ', '.join(bad) if bad else ''}; run it on onnxruntime instead")
    return net


def load(model, options: EngineOptions) -> Session:
    """Open ``model`` (an :class:`~edgedeploy.ingest.Model`) on ncnn, converting its ONNX once (cached)."""
    from edgedeploy.zoo import cache_dir

    onnx_path = model.onnx_path()
    inputs, outputs = _specs(onnx_path)
    example = getattr(getattr(model, "zoo", None), "example_shape", None)
    shapes = [trace_shape(s, example if len(inputs) == 1 else None) for s in inputs]
    key = f"{model.content_hash()[:24]}-{'_'.join('x'.join(map(str, s)) for s in shapes)}"
    param, weights = convert(onnx_path, shapes, cache_dir() / "converted" / "ncnn" / key)
    session = NcnnSession(_net(param, weights, options), inputs, outputs, param=param)
    if options.precision == "bf16":
        session.notes.append("ncnn has no bf16 arithmetic option here; ran fp32")
    return session


# The engine interface being introduced elsewhere: open(model, options) / open_default(model).
open = load  # noqa: A001  (the engine-module protocol's name)


def open_default(model) -> Session:
    """``model`` on ncnn as a user opens it untuned (ncnn's own defaults, all cores)."""
    return load(model, EngineOptions())
