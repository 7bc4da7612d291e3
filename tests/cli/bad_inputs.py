"""Issue 12's list of bad inputs: the files, and each command line with the exit code the contract gives it.

Shared by ``tests/cli/test_bad_inputs.py`` (in process, through ``edgedeploy.cli.main``) and
``benchmarks/bad_inputs.py`` (every case through the installed script; counts tracebacks).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Case:
    """One bad input: the command line (``{name}`` fills in a file of :func:`make_files`), the exit code
    the contract gives it, and a phrase its one line must contain."""

    id: str
    argv: tuple[str, ...]
    exit_code: int
    says: str


def _onnx(path: Path, dims, *, op: str = "Relu", domain: str = "") -> Path:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], domain=domain or None)
    graph = helper.make_graph([node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_files(tmp: Path, tiny_onnx: Path) -> dict[str, str]:
    """Write every bad file under ``tmp``; the names the cases' ``{...}`` refer to."""
    rng = np.random.default_rng(12)
    f: dict[str, Path] = {"tiny": tiny_onnx, "dir": tmp / "a-dir", "file": tmp / "a-file"}
    f["dir"].mkdir(parents=True, exist_ok=True)
    f["file"].write_text("not a directory\n")
    (tmp / "random.pdmodel").write_bytes(rng.bytes(4096))
    (tmp / "random.pdiparams").write_bytes(rng.bytes(4096))
    f["random_pd"] = tmp / "random.pdmodel"
    # a program whose first block claims 200 bytes and holds 10: a download cut short
    (tmp / "cut.pdmodel").write_bytes(b"\x0a\xc8\x01" + rng.bytes(10))
    (tmp / "cut.pdiparams").write_bytes(rng.bytes(64))
    f["cut_pd"] = tmp / "cut.pdmodel"
    f["zero_dim"] = _onnx(tmp / "zero.onnx", [0, 3, 4, 4])
    f["neg_dim"] = _onnx(tmp / "neg.onnx", [-1, 3, -5, 4])
    f["foo_op"] = _onnx(tmp / "foo.onnx", [1, 3, 4, 4], op="FooBarOp", domain="com.example")
    f["latin1_yaml"] = tmp / "latin1.yaml"
    f["latin1_yaml"].write_bytes("model: caf\xe9.onnx\n".encode("latin-1"))
    f["random_yaml"] = tmp / "random.yaml"
    f["random_yaml"].write_text(f"model: {f['random_pd']}\ndeployment: {{hardware: local, input_shape: 8x8}}\n")
    f["deploy_yaml"] = tmp / "deploy.yaml"
    f["deploy_yaml"].write_text(textwrap.dedent(f"""\
        model: {tiny_onnx}
        deployment: {{hardware: local, precision: fp32, thread_num: 1, engines: [onnxruntime], input_shape: 8x8}}
        performance: {{target_latency: 1s}}
        """))
    f["jsonl_under_file"] = tmp / "jsonl.yaml"
    f["jsonl_under_file"].write_text(f"source: {{url: {tmp / 'frames'}}}\nstages: [{{type: resize, scale: 0.5}}]\n"
                                     f"sinks: [{{type: jsonl, path: {f['file']}/events.jsonl}}]\n")
    f["jsonl_in_proc"] = tmp / "jsonl-proc.yaml"
    f["jsonl_in_proc"].write_text(f"source: {{url: {tmp / 'frames'}}}\nstages: [{{type: resize, scale: 0.5}}]\n"
                                  "sinks: [{type: jsonl, path: /proc/edgedeploy-events.jsonl}]\n")
    f["nan_calib"] = tmp / "nan-calib"
    f["nan_calib"].mkdir(exist_ok=True)
    for i in range(8):
        np.save(f["nan_calib"] / f"{i}.npy", np.full((1, 3, 16, 16), np.nan, np.float32))
    for name, manifest in (("manifest_list", "[1, 2]"), ("manifest_files_str", '{"files": "x"}')):
        f[name] = tmp / name
        f[name].mkdir(exist_ok=True)
        (f[name] / "manifest.json").write_text(manifest)
    f["fps_negative"] = tmp / "fps.yaml"
    f["fps_negative"].write_text(f"source: {{url: {tmp / 'frames'}, fps: -5}}\nstages: [{{type: resize, scale: 0.5}}]\n")
    f["mqtt_port"] = tmp / "mqtt.yaml"
    f["mqtt_port"].write_text(f"source: {{url: {tmp / 'frames'}}}\nstages: [{{type: resize, scale: 0.5}}]\n"
                              "sinks: [{type: mqtt, host: 127.0.0.1, port: 99999, topic: x}]\n")
    f["tmp"] = tmp
    return {k: str(v) for k, v in f.items()}


CASES: list[Case] = [
    # Paddle bytes that would crash Paddle's parser (a segfault before): refused while loading
    *(Case(f"random-pdmodel-{cmd}", (cmd, "{random_pd}", *extra), 2, "is not a Paddle inference program")
      for cmd, extra in (("run", ("--shape", "1x3x8x8")), ("info", ()), ("bench", ("--shape", "8x8")),
                         ("doctor", ()), ("eval", ("--task", "cls", "--n", "1")))),
    Case("random-pdmodel-deploy", ("deploy", "{random_yaml}", "-o", "{tmp}/out-rand"), 2,
         "is not a Paddle inference program"),
    Case("truncated-pdmodel-run", ("run", "{cut_pd}"), 2, "protobuf wire format is corrupt"),
    # ONNX declaring impossible shapes
    Case("zero-dim-run", ("run", "{zero_dim}"), 2, "with dimension 0"),
    Case("negative-dim-run", ("run", "{neg_dim}", "--engine", "openvino"), 2, "with dimension -5"),
    Case("negative-dim-info", ("info", "{neg_dim}"), 2, "every fixed dimension must be at least 1"),
    # an operator no engine has: doctor reports it (a negative verdict), bench's only row fails
    Case("unknown-op-doctor", ("doctor", "{foo_op}", "--runs", "3"), 1, "problem"),
    Case("unknown-op-bench", ("bench", "{foo_op}", "--engine", "onnxruntime", "--no-anchors", "--runs", "1",
                              "--warmup", "0"), 1, "every one of the 1 configurations failed"),
    # sizes that do not fit
    Case("huge-shape-run", ("run", "{tiny}", "--shape", "100000x3x224x224"), 2, "available"),
    Case("huge-shape-bench", ("bench", "{tiny}", "--shape", "100000x3x224x224"), 2, "available"),
    # output paths: a directory, under a file, not writable
    Case("save-is-dir", ("run", "{tiny}", "--shape", "1x3x8x8", "--save", "{dir}"), 2, "is a directory"),
    Case("save-under-file", ("run", "{tiny}", "--shape", "1x3x8x8", "--save", "{file}/out.npz"), 2,
         "is not a directory"),
    Case("save-in-proc", ("run", "{tiny}", "--shape", "1x3x8x8", "--save", "/proc/x"), 2, "cannot write"),
    Case("markdown-is-dir", ("bench", "{tiny}", "--shape", "8x8", "--markdown", "{dir}"), 2, "is a directory"),
    Case("markdown-under-file", ("bench", "{tiny}", "--shape", "8x8", "--markdown", "{file}/t.md"), 2,
         "is not a directory"),
    Case("markdown-in-proc", ("bench", "{tiny}", "--shape", "8x8", "--markdown", "/proc/x"), 2, "cannot write"),
    Case("deploy-out-is-file", ("deploy", "{deploy_yaml}", "-o", "{file}"), 2, "is not a directory"),
    Case("deploy-out-in-proc", ("deploy", "{deploy_yaml}", "-o", "/proc/x"), 2, "cannot write"),
    Case("gate-video-is-dir", ("gate-video", "{dir}"), 2, "is a directory"),
    Case("gate-video-under-file", ("gate-video", "{file}/v.mp4"), 2, "is not a directory"),
    Case("gate-video-in-proc", ("gate-video", "/proc/x.mp4"), 2, "cannot write"),
    Case("jsonl-under-file", ("pipeline", "{jsonl_under_file}"), 2, "is not a directory"),
    Case("jsonl-in-proc", ("pipeline", "{jsonl_in_proc}"), 2, "cannot write"),
    # config files that are not UTF-8 text, or are a directory
    *(Case(f"{kind}-{cmd}", (cmd, "{%s}" % kind), 2, says)
      for cmd in ("deploy", "doctor", "pipeline")
      for kind, says in (("latin1_yaml", "is not UTF-8"), ("dir", "is a directory"))
      if not (cmd == "doctor" and kind == "dir")),
    Case("dir-doctor", ("doctor", "{dir}"), 2, "holds no single model"),
    # options out of range, or meaningless without another
    Case("latency-without-recommend", ("devices", "--latency", "10 parsecs"), 2, "add --recommend"),
    Case("precision-int2", ("devices", "--recommend", "{tiny}", "--precision", "int2"), 2, "'int2' is not one of"),
    Case("memory-1e100GB", ("devices", "--recommend", "{tiny}", "--shape", "1x3x8x8", "--memory", "1e100GB"), 1,
         "no device"),
    Case("max-frames-negative", ("pipeline", "{jsonl_under_file}", "--max-frames", "-1"), 2, "'--max-frames'"),
    # damaged or impossible configuration and data
    Case("nan-calibration", ("optimize", "{tiny}", "-o", "{tmp}/q.onnx", "--engine", "onnxruntime", "--calib",
                             "{nan_calib}"), 2, "holds NaN or infinity"),
    Case("manifest-is-a-list", ("deployment", "verify", "{manifest_list}"), 2, "is not a JSON object"),
    Case("manifest-files-not-a-map", ("deployment", "run", "{manifest_files_str}"), 2, "'files' is a str"),
    Case("fps-negative", ("pipeline", "{fps_negative}"), 2, "source.fps"),
    Case("mqtt-port-99999", ("pipeline", "{mqtt_port}"), 2, "port 99999 is out of range"),
    Case("recommend-missing-model", ("devices", "--recommend", "{tmp}/missing.onnx"), 2, "not found"),
    Case("doctor-engine-foo", ("doctor", "{tiny}", "--engine", "foo"), 2, "'foo' is not one of"),
    Case("threads-zero", ("run", "{tiny}", "--threads", "0"), 2, "'--threads'"),
    Case("threads-huge", ("run", "{tiny}", "--threads", "10000"), 2, "'--threads'"),
    Case("runs-zero", ("run", "{tiny}", "--runs", "0"), 2, "'--runs'"),
    Case("bogus-option", ("run", "{tiny}", "--bogus"), 2, "No such option: --bogus"),
]


def argv_of(case: Case, files: dict[str, str]) -> list[str]:
    return [a.format(**files) for a in case.argv]


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (to assert a refused command wrote nothing)."""
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, names in os.walk(root) for n in dirs + names}
