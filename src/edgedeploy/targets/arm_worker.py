"""Worker run by the arm64 root's python under qemu-aarch64: one model, many runs, over :mod:`wire`.

argv: engine ("onnxruntime" | "ncnn"), model path (ONNX, or the ncnn .param with its .bin beside
it), threads, precision ("fp32" | "fp16": ncnn's FP16 storage and arithmetic). Says hello with its machine, engine version and tensor names, then answers each
``{"op": "run"}`` (arrays "a0", "a1", ... in input order) with the outputs in the same form.
Runs only inside the emulated root: it imports nothing from edgedeploy but :mod:`wire`.
"""

import platform
import sys

import numpy as np
import wire


def open_onnxruntime(path: str, threads: int, precision: str = "fp32"):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs = [i.name for i in sess.get_inputs()]
    return ort.__version__, inputs, names, lambda arrays: sess.run(names, dict(zip(inputs, arrays)))


def open_ncnn(path: str, threads: int, precision: str = "fp32"):
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    fp16 = precision == "fp16"  # ARMv8.2 FP16 storage and arithmetic, as ncnn uses them on the board
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
    net.opt.use_bf16_storage = False
    if net.load_param(path) or net.load_model(path[: -len(".param")] + ".bin"):
        raise RuntimeError(f"ncnn could not load {path}")
    # pnnx numbers the blobs in0.. / out0.. in the ONNX graph's order; output_names() lists them in
    # layer order, which differs for multi-output models
    inputs = [f"in{i}" for i in range(len(net.input_names()))]
    outputs = [f"out{i}" for i in range(len(net.output_names()))]

    def run(arrays):
        per_image = []
        for b in range(arrays[0].shape[0]):
            with net.create_extractor() as ex:
                for name, a in zip(inputs, arrays):
                    ex.input(name, ncnn.Mat(np.ascontiguousarray(a[b])).clone())
                per_image.append([np.array(ex.extract(name)[1]) for name in outputs])
        return [np.stack([img[i] for img in per_image]) for i in range(len(outputs))]

    return ncnn.__version__, inputs, outputs, run


def main() -> None:
    engine, path, threads, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        version, inputs, outputs, run = {"onnxruntime": open_onnxruntime, "ncnn": open_ncnn}[engine](path, threads, precision)
    except Exception as exc:  # reported to the parent, which raises it there
        wire.send(stdout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    wire.send(stdout, {"ok": True, "machine": platform.machine(), "engine": engine, "version": version,
                       "numpy": np.__version__, "inputs": inputs, "outputs": outputs})
    while True:
        try:
            header, arrays = wire.recv(stdin)
        except wire.WireError:
            return
        if header.get("op") != "run":
            return
        try:
            outs = run([arrays[f"a{i}"] for i in range(len(arrays))])
            wire.send(stdout, {"ok": True}, {f"a{i}": o for i, o in enumerate(outs)})
        except Exception as exc:
            wire.send(stdout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
