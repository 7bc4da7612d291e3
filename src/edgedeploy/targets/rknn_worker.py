"""Worker run by the RKNN-Toolkit2 venv's python: convert one ONNX model to .rknn and run it on the simulator.

Speaks :mod:`wire`. First message ``{"op": "build", ...}`` (see :func:`build`); the answer is the
hello (tensor names, toolkit version). Then ``{"op": "run"}`` messages with arrays ``a0, a1, ...``
run the quantized model on the toolkit's simulator (accuracy, not speed). Imports nothing from
edgedeploy: the venv has numpy 1.26 and onnx 1.18, which edgedeploy does not run on.
"""

import contextlib
import os
import re
import sys

import numpy as np
import wire  # from this script's folder, which also holds edgedeploy's rknn.py: drop it from the path,
sys.path.pop(0)  # so that "rknn" below is the toolkit's package

_ERROR = re.compile(r"^E (\w+): (.+)$")


def first_error(log: str) -> str:
    """The toolkit's first error line ("E step: message"; it prints them in colour, among tracebacks)."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    for line in clean.splitlines():
        m = _ERROR.match(line.strip())
        if m and not m.group(2).startswith(("Traceback", "rknn-toolkit2 version")):
            return m.group(2).strip()[:300]
    return clean.strip().splitlines()[-1][:300] if clean.strip() else "no message"


@contextlib.contextmanager
def captured():
    """Route the toolkit's prints (fd 1 and 2) into a file: fd 1 carries the wire protocol."""
    import tempfile

    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        box = {"log": ""}
        try:
            yield box
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            log.seek(0)
            box["log"] = log.read()


def build(req: dict, out):
    """Load the ONNX with fixed shapes, quantize (int8) on the dataset or keep fp16, export, start the simulator."""
    from rknn.api import RKNN

    rknn = RKNN(verbose=False)
    with captured() as box:
        rknn.config(target_platform=req.get("platform", "rk3588"), quantized_dtype="w8a8",
                    quantized_algorithm=req.get("algorithm", "normal"), optimization_level=3)
        steps = [("load_onnx", lambda: rknn.load_onnx(model=req["onnx"], inputs=req["inputs"],
                                                     input_size_list=req["shapes"])),
                 *(hybrid(rknn, req) if req.get("float_subgraphs") else
                   [("build", lambda: rknn.build(do_quantization=req["dtype"] == "int8", dataset=req.get("dataset")))]),
                 ("export_rknn", lambda: rknn.export_rknn(req["out"])),
                 ("init_runtime", lambda: rknn.init_runtime())]
        failed = None
        for name, step in steps:
            try:
                rc = step()
            except Exception as exc:  # the toolkit raises after printing; its log says why
                rc, failed = -1, f"{name}: {type(exc).__name__}"
            if rc != 0:
                failed = failed or name
                break
    if failed:
        wire.send(out, {"ok": False, "error": f"RKNN-Toolkit2 {failed} failed: {first_error(box['log'])}",
                        "step": failed})
        return None
    from importlib.metadata import version

    wire.send(out, {"ok": True, "version": version("rknn-toolkit2"), "inputs": req["inputs"], "outputs": [],
                    "out": req["out"]})
    return rknn


def hybrid(rknn, req: dict) -> list:
    """Hybrid quantization: the subgraphs [[input tensor, output tensor], ...] of ``float_subgraphs``
    stay in float, the rest is INT8 (step 1 writes the model, data and quantization config into the
    working directory; step 2 builds from them)."""
    import glob
    import tempfile

    work = tempfile.mkdtemp(prefix="rknn-hybrid-")

    def step1():
        os.chdir(work)
        return rknn.hybrid_quantization_step1(dataset=req["dataset"], custom_hybrid=req["float_subgraphs"])

    def step2():
        cfg = glob.glob(os.path.join(work, "*.quantization.cfg"))[0]
        stem = cfg[: -len(".quantization.cfg")]
        return rknn.hybrid_quantization_step2(model_input=stem + ".model", data_input=stem + ".data",
                                              model_quantization_cfg=cfg)

    return [("hybrid_quantization_step1", step1), ("hybrid_quantization_step2", step2)]


def main() -> None:
    stdin, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    rknn = None
    while True:
        try:
            header, arrays = wire.recv(stdin)
        except wire.WireError:
            break
        if header.get("op") == "build":
            rknn = build(header, out)
            if rknn is None:
                break
        elif header.get("op") == "run" and rknn is not None:
            with captured() as box:
                outs = rknn.inference(inputs=[arrays[f"a{i}"] for i in range(len(arrays))], data_format="nchw")
            if outs is None:
                wire.send(out, {"ok": False, "error": f"simulator failed: {first_error(box['log'])}"})
            else:
                wire.send(out, {"ok": True}, {f"a{i}": np.asarray(o) for i, o in enumerate(outs)})
        else:
            break
    if rknn is not None:
        rknn.release()


if __name__ == "__main__":
    main()
