"""``--target`` on optimize/deploy/bench: the profile chosen, bad names and precisions refused in
one line, x86 figures never shown as the target's, the target's estimate labelled estimated."""

from __future__ import annotations

import json

import pytest

from edgedeploy.errors import UserError
from edgedeploy.targets.select import choose, estimated, here_engines, not_the_targets
from tests.cli.test_cli import one_line_error, run_cli


def test_choose_refuses_with_the_alternatives():
    assert choose("RPi5").key == "raspberry-pi-5"
    with pytest.raises(UserError, match="did you mean 'jetson-orin-nano'"):
        choose("jetson-orinnano")
    with pytest.raises(UserError, match=r"cannot run precision 'bf16'.*fp16: rknn, ncnn"):
        choose("rk3588", precisions=["bf16"])
    with pytest.raises(UserError, match="does not run engine 'openvino'; its engines are rknn, onnxruntime, ncnn"):
        choose("rk3588", engines=["openvino"])
    assert here_engines(choose("rk3588"), ("onnxruntime", "openvino", "ncnn")) == ["onnxruntime", "ncnn"]
    assert not_the_targets(choose("local")) is None


def test_estimate_rows_are_labelled_and_only_for_runnable_precisions(tiny_onnx):
    t = choose("raspberry-pi-5")
    rows = estimated(t, str(tiny_onnx), shape=(1, 3, 32, 32), precisions=["fp32", "bf16"])
    assert [r["how"] for r in rows] == ["estimated"] and rows[0]["latency_ms"] > 0
    assert "not on raspberry-pi-5 (aarch64)" in not_the_targets(t)


@pytest.mark.parametrize("command", ["bench", "optimize", "deploy"])
def test_cli_bad_target_is_one_line(command, capsys, tiny_onnx, tmp_path):
    yaml = tmp_path / "d.yaml"
    yaml.write_text(f"model: {tiny_onnx}\ndeployment:\n  hardware: local\n")
    argv = {"bench": ["bench", str(tiny_onnx)], "optimize": ["optimize", str(tiny_onnx), "-o", str(tmp_path / "o.onnx")],
            "deploy": ["deploy", str(yaml), "-o", str(tmp_path / "out")]}[command]
    code, _, err = run_cli(capsys, *argv, "--target", "rasberry-pi-5")
    assert code == 2 and "did you mean 'raspberry-pi-5'" in one_line_error(err)


def test_bench_target_runs_its_engines_and_shows_its_estimate(capsys, tiny_onnx):
    code, out, _ = run_cli(capsys, "bench", str(tiny_onnx), "--target", "rpi5", "--engine", "onnxruntime",
                           "--shape", "32x32", "--runs", "2", "--warmup", "0", "--json")
    assert code == 0
    report = json.loads(out)
    fig = report["target"]
    assert fig["key"] == "raspberry-pi-5" and "measured on this" in fig["note"]
    assert fig["estimated"] and all(r["how"] == "estimated" for r in fig["estimated"])
    code, _, err = run_cli(capsys, "bench", str(tiny_onnx), "--target", "rk3588", "--precision", "bf16")
    assert code == 2 and "choose one of those precisions" in one_line_error(err)
