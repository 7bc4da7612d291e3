"""Paddle inference model → ONNX with paddle2onnx, in a child process.

paddle2onnx exits the process on some failures and prints its own progress, so it runs in a
subprocess with ``verbose=True``: the last operator it started but did not finish names the
operator that failed. Polygraphy's auto-install of missing modules is switched off (no pip
installs at run time).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from edgedeploy.errors import ConversionError, EngineMissing

log = logging.getLogger(__name__)

OPSET = 11  # the zoo's Paddle models use only opset-11 operators; later passes upgrade when needed


def convert_cached(model: Path, params: Path | None, out: Path, *, name: str) -> Path:
    """Convert once; later calls return the cached ``out``."""
    if out.exists():
        return out
    try:
        import paddle2onnx  # noqa: F401  (only to fail early with the install command)
    except ImportError:
        raise EngineMissing(
            f"converting the Paddle model {name} to ONNX needs paddle2onnx: pip install 'edgedeploy[paddle]'"
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".part-{os.getpid()}")
    log.info("converting %s to ONNX with paddle2onnx", name)
    env = dict(os.environ, POLYGRAPHY_AUTOINSTALL_DEPS="0", GLOG_minloglevel="2")
    proc = subprocess.run(
        [sys.executable, "-m", "edgedeploy.ingest.paddle_convert", str(model), str(params or ""), str(tmp)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise ConversionError(describe_failure(name, proc.stdout + proc.stderr))
    repaired = repair_scalar_concats(tmp)
    if repaired:
        log.info("repaired %d Concat node(s) that paddle2onnx emitted with rank-0 inputs", repaired)
    _keep_paddle_output_names(model, tmp)
    os.replace(tmp, out)
    return out


def _keep_paddle_output_names(model: Path, onnx_path: Path) -> None:
    """paddle2onnx names outputs ``fetch_name_N``; give them back the Paddle program's names so a
    predictor's ``get_output_handle(name)`` works the same on every engine."""
    if model.suffix != ".pdmodel":
        return
    import onnx
    from paddle.base.proto import framework_pb2

    prog = framework_pb2.ProgramDesc()
    prog.ParseFromString(model.read_bytes())
    fetch = sorted((op for op in prog.blocks[0].ops if op.type == "fetch"),
                   key=lambda op: next((a.i for a in op.attrs if a.name == "col"), 0))
    names = [op.inputs[0].arguments[0] for op in fetch]
    proto = onnx.load(str(onnx_path))
    outputs = proto.graph.output
    if len(names) != len(outputs) or [o.name for o in outputs] == names:
        return
    renames = {o.name: new for o, new in zip(outputs, names)}
    for node in proto.graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for o in outputs:
        o.name = renames[o.name]
    onnx.save(proto, str(onnx_path))


def repair_scalar_concats(path: Path) -> int:
    """Unsqueeze rank-0 inputs of axis-0 Concats that also take rank-1 inputs; returns how many.

    paddle2onnx 2.1 with Paddle 3.3 builds Reshape targets as Concat(Squeeze(shape slice), Constant[1]),
    mixing a scalar with a vector, which ONNX forbids and ONNX Runtime refuses to load.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in (*inferred.graph.value_info, *inferred.graph.input)
            if v.type.tensor_type.HasField("shape")}
    rank.update({i.name: len(i.dims) for i in model.graph.initializer})
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 11)
    nodes, fixed = [], 0
    for node in model.graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        ranks = [rank.get(i) for i in node.input]
        if node.op_type == "Concat" and axis == 0 and 0 in ranks and 1 in ranks:
            for k, name in enumerate(node.input):
                if rank.get(name) == 0:
                    new = f"{name}__unsqueezed{fixed}"
                    if opset >= 13:
                        axes = f"{new}__axes"
                        zero = numpy_helper.from_array(np.array([0], dtype=np.int64))
                        nodes.append(helper.make_node("Constant", [], [axes], value=zero))
                        nodes.append(helper.make_node("Unsqueeze", [name, axes], [new]))
                    else:
                        nodes.append(helper.make_node("Unsqueeze", [name], [new], axes=[0]))
                    node.input[k] = new
                    fixed += 1
        nodes.append(node)
    if fixed:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(path))
    return fixed


def describe_failure(name: str, log_text: str) -> str:
    """One line: which operator paddle2onnx failed on and its own message."""
    started = re.findall(r"Start export (\S+), op_id: (\d+)", log_text)
    finished = set(re.findall(r"Finish export (\S+), op_id: (\d+)", log_text))
    failed = [s for s in started if s not in finished]
    errors = re.findall(r"\[ERROR\]\s*(.*?)(?:\x1b\[0m|\Z)", log_text, flags=re.S)
    if errors:
        message = " ".join(errors[-1].split())
    else:
        lines = log_text.strip().splitlines()
        message = lines[-1] if lines else "no output"
    message = re.sub(r"\s*\[Hint:.*", "", message).strip()
    where = f"operator {failed[-1][0]} (op {failed[-1][1]})" if failed else "an unknown operator"
    return (f"paddle2onnx could not convert {name}: failed at {where}: {message[:300]}; "
            "run it natively with --engine paddle (or openvino, which reads Paddle models)")


def _main(argv: list[str]) -> int:
    model, params, out = argv
    import paddle2onnx

    paddle2onnx.export(model, params or "", out, opset_version=OPSET, optimize_tool="None", verbose=True)
    return 0 if Path(out).exists() else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
