"""The seed's Python samples run on every engine with only their import line changed."""

from __future__ import annotations

import importlib.util
import logging
import runpy
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgedeploy import engines, inference
from edgedeploy.errors import UserError
from tests.conftest import build_tiny_onnx, installed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EVERY_ENGINE = [installed(e) for e in engines.ENGINES]


def _seed_line_changes(name: str, original_import: str) -> None:
    """Guard the claim: the example's only code change from the seed is its import line."""
    code = [line for line in (EXAMPLES / name).read_text().splitlines() if not line.lstrip().startswith("#")]
    assert "import edgedeploy.inference as inference" in code
    assert not any(original_import in line for line in code)


@pytest.mark.parametrize("engine", EVERY_ENGINE)
def test_seed_predictor_sample_runs(engine, tiny_paddle, tmp_path, monkeypatch):
    _seed_line_changes("seed_paddle_inference.py", "import paddle.inference")
    for f in ("model.pdmodel", "model.pdiparams"):
        shutil.copy(tiny_paddle.parent / f, tmp_path / f)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(inference.ENGINE_ENV, engine)
    ns = runpy.run_path(str(EXAMPLES / "seed_paddle_inference.py"))
    out = ns["output_data"]
    assert out.shape == (1, 4) and np.isclose(out.sum(), 1.0, atol=1e-5)
    assert ns["predictor"].engine() == engine
    if not engines.gpu_available(engine):  # enable_use_gpu(100, 0) was said, not silently ignored
        assert any("no GPU available on this machine; running on the CPU" in n for n in ns["predictor"].session.notes)


def test_gpu_fallback_warns_once_per_engine(tiny_onnx, caplog, monkeypatch):
    from edgedeploy.engines import base

    if engines.gpu_available("onnxruntime"):
        pytest.skip("a GPU is present: no fallback")
    monkeypatch.setattr(base, "_warned", set())
    config = inference.Config(str(tiny_onnx))
    config.set_engine("onnxruntime")
    config.enable_use_gpu(100, 0)
    with caplog.at_level(logging.WARNING):
        inference.create_predictor(config)
        inference.create_predictor(config)
    assert caplog.text.count("no GPU available on this machine") == 1


def _edge_system_class():
    spec = importlib.util.spec_from_file_location("seed_edge", EXAMPLES / "seed_edge_inference_system.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EdgeInferenceSystem


@pytest.mark.parametrize("engine", EVERY_ENGINE)
def test_seed_edge_inference_system_runs(engine, tiny_paddle, tmp_path, monkeypatch):
    _seed_line_changes("seed_edge_inference_system.py", "import paddle.inference")
    Base = _edge_system_class()

    class Camera(Base):
        def preprocess(self, frame):
            return (frame.astype(np.float32).transpose(2, 0, 1)[None] / 255.0 - 0.5) / 0.5

        def postprocess(self, results):
            return int(results.argmax()), float(results.max())

    monkeypatch.setenv(inference.ENGINE_ENV, engine)
    # Config(model_path) with one argument: a Paddle model directory, or an ONNX file.
    model_path = tiny_paddle.parent if engines.runnable(engine, "paddle") is None else build_tiny_onnx(tmp_path / "m.onnx")
    camera = Camera(str(model_path))
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    label, score = camera.process_frame(frame)
    assert 0 <= label < 4 and 0.25 <= score <= 1.0
    assert camera.predictor.engine() == engine


def test_predictor_api_surface(tiny_onnx):
    config = inference.Config(str(tiny_onnx))
    config.set_cpu_math_library_num_threads(2)
    config.switch_ir_optim(False)
    config.enable_mkldnn()
    config.disable_gpu()
    assert not config.use_gpu() and not config.ir_optim() and config.cpu_math_library_num_threads() == 2
    p = inference.create_predictor(config)
    h = p.get_input_handle("input")
    h.reshape([1, 3, 16, 16])
    x = np.ones((1, 3, 16, 16), np.float32)
    h.copy_from_cpu(x)
    assert h.shape() == [1, 3, 16, 16]
    out = p.get_output_handle("output")
    with pytest.raises(UserError, match="call predictor.run\\(\\) first"):
        out.copy_to_cpu()
    p.run()
    assert out.shape() == [1, 4]
    listed = p.run([x])  # Paddle's run(list) form returns the outputs
    np.testing.assert_array_equal(listed[0], out.copy_to_cpu())
    with pytest.raises(UserError, match="no input named 'image'; its inputs are: input"):
        p.get_input_handle("image")
    with pytest.raises(UserError, match=r"reshape\(\) said \[1, 3, 16, 16\] but the array is \[1, 3, 8, 8\]"):
        h.copy_from_cpu(np.ones((1, 3, 8, 8), np.float32))
    with pytest.raises(UserError, match="unknown engine 'tensorrt'"):
        config.set_engine("tensorrt")
    with pytest.raises(UserError, match="at least 1"):
        config.set_cpu_math_library_num_threads(0)


def test_engine_choice_order(monkeypatch, tiny_onnx):
    config = inference.Config(str(tiny_onnx))
    monkeypatch.delenv(inference.ENGINE_ENV, raising=False)
    assert config.engine() == "auto"
    monkeypatch.setenv(inference.ENGINE_ENV, "openvino")
    assert config.engine() == "openvino"
    config.set_engine("onnxruntime")
    assert config.engine() == "onnxruntime"
    assert inference.create_predictor(config).engine() == "onnxruntime"
