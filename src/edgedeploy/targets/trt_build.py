"""Build a TensorRT engine from an ONNX model: the script edgedeploy ships with a Jetson artefact.

Run on the Jetson (JetPack's TensorRT python bindings) or any NVIDIA GPU with the ``tensorrt`` wheel:

    python3 trt_build.py settings.json            # writes the engine named in settings.json

settings.json (written by edgedeploy): onnx, engine, precision ("int8" | "fp16" | "fp32"),
workspace_mb, timing_cache, shapes ({input name: [dims]}). An explicitly quantized (QDQ) ONNX
carries its own INT8 scales: TensorRT needs no calibrator for it. The timing cache makes a
rebuild (a new JetPack, a new board of the same kind) take seconds instead of minutes.
Standalone: imports nothing from edgedeploy.
"""

import json
import sys
from pathlib import Path


def build(settings: dict, base: Path) -> Path:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10 needs it; 10 has only this mode
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse((base / settings["onnx"]).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise SystemExit("TensorRT's ONNX parser rejected the model: " + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings["workspace_mb"] << 20)
    if settings["precision"] in ("int8", "fp16"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers left in float run FP16
    if settings["precision"] == "int8" and hasattr(trt.BuilderFlag, "INT8"):
        config.set_flag(trt.BuilderFlag.INT8)  # TensorRT 8.x: allow the QDQ layers' INT8 kernels
    cache_path = base / settings["timing_cache"]
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = settings["shapes"][tensor.name]
        profile.set_shape(tensor.name, dims, dims, dims)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise SystemExit("TensorRT could not build the engine (see the messages above)")
    out = base / settings["engine"]
    out.write_bytes(bytes(plan))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return out


if __name__ == "__main__":
    path = Path(sys.argv[1])
    print(build(json.loads(path.read_text()), path.parent))
