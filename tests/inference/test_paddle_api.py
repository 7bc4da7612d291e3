"""The rest of the seed's Paddle Inference API: clone shares the loaded model, the pool, model
buffers, TensorRT/BF16/optim-cache calls that take effect or warn once saying why not."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from edgedeploy import engines, inference
from edgedeploy.engines import base
from edgedeploy.errors import UserError
from edgedeploy.vocab import Precision
from tests.conftest import installed

ONNX_ENGINES = [installed(e) for e, s in engines.ENGINES.items() if "onnx" in s.formats]


def _engine_object(predictor):
    s = predictor.session
    return next(getattr(s, a) for a in ("_sess", "_compiled", "_net", "_predictor") if hasattr(s, a))


def _config(model, engine):
    config = inference.Config(str(model))
    config.set_engine(engine)
    return config


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_clone_shares_the_loaded_model_and_agrees(engine, tiny_onnx, image_batch):
    first = inference.create_predictor(_config(tiny_onnx, engine))
    twin = first.clone()
    assert twin is not first and twin.session is not first.session
    assert _engine_object(twin) is _engine_object(first)  # the weights are shared, nothing re-read
    x = image_batch[:1]
    a, = first.run([x])
    b, = twin.run([x])
    np.testing.assert_array_equal(a, b)


def test_clones_run_concurrently(tiny_onnx, image_batch):
    pool = inference.PredictorPool(_config(tiny_onnx, "onnxruntime"), 3)
    assert len(pool) == 3 and _engine_object(pool.retrive(2)) is _engine_object(pool.retrive(0))
    want, = pool.retrive(0).run([image_batch[:1]])
    got = {}

    def work(i):
        got[i] = pool.retrive(i).run([image_batch[:1]])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        np.testing.assert_array_equal(got[i], want)
    with pytest.raises(UserError, match=r"predictors 0\.\.2"):
        pool.retrive(3)


def test_model_buffer_onnx(tiny_onnx, image_batch):
    data = tiny_onnx.read_bytes()
    config = inference.Config()
    config.set_model_buffer(data, len(data), b"", 0)
    assert config.model_from_memory()
    from_memory, = inference.create_predictor(config).run([image_batch[:1]])
    from_file, = inference.create_predictor(inference.Config(str(tiny_onnx))).run([image_batch[:1]])
    np.testing.assert_allclose(from_memory, from_file, rtol=1e-6)
    with pytest.raises(UserError, match="program buffer is empty"):
        inference.Config().set_model_buffer(b"", 0)


def test_model_buffer_paddle(tiny_paddle):
    prog = (tiny_paddle.parent / "model.pdmodel").read_bytes()
    params = (tiny_paddle.parent / "model.pdiparams").read_bytes()
    config = inference.Config()
    config.set_model_buffer(prog, len(prog), params, len(params))
    config.set_engine("paddle")
    predictor = inference.create_predictor(config)
    feeds = list(predictor.session.example_feeds().values())
    from_file = inference.Config(str(tiny_paddle), str(tiny_paddle.parent / "model.pdiparams"))
    from_file.set_engine("paddle")
    np.testing.assert_allclose(predictor.run(feeds)[0], inference.create_predictor(from_file).run(feeds)[0], rtol=1e-6)


def test_tensorrt_without_gpu_warns_once_and_stays_off(tiny_onnx, caplog, monkeypatch):
    if inference.paddle_api.tensorrt_note(True) is None:
        pytest.skip("TensorRT is present here: the GPU test covers it")
    monkeypatch.setattr(base, "_warned", set())
    config = _config(tiny_onnx, "onnxruntime")
    config.enable_use_gpu(100, 0)
    with caplog.at_level(logging.WARNING):
        config.enable_tensorrt_engine(1 << 28, 1, 3, inference.PrecisionType.Int8, False, True)
        config.enable_tensorrt_engine(precision_mode=inference.PrecisionType.Half)
    assert not config.tensorrt_engine_enabled()
    assert caplog.text.count("enable_tensorrt_engine") == 1 and "jetson-orin-nano" in caplog.text


def test_bf16_maps_to_openvino_and_warns_elsewhere(tiny_onnx, caplog, monkeypatch):
    monkeypatch.setattr(base, "_warned", set())
    config = _config(tiny_onnx, "onnxruntime")
    config.enable_mkldnn_bfloat16()
    assert config.mkldnn_bfloat16_enabled() and config.options().precision == "bf16"
    with caplog.at_level(logging.WARNING):
        inference.create_predictor(config)
        inference.create_predictor(config)
    assert caplog.text.count("has no BF16 path") == 1
    if engines.available("openvino"):
        caplog.clear()
        config.set_engine("openvino")
        with caplog.at_level(logging.WARNING):
            inference.create_predictor(config)
        assert "BF16" not in caplog.text


def test_small_calls(tiny_onnx, image_batch, caplog, monkeypatch):
    monkeypatch.setattr(base, "_warned", set())
    assert inference.PrecisionType.Half.precision is Precision.FP16 and int(inference.PrecisionType.Int8) == 1
    version = inference.get_version()
    assert version.startswith("edgedeploy version:") and "onnxruntime version:" in version
    config = _config(tiny_onnx, "onnxruntime")
    with caplog.at_level(logging.WARNING):
        config.set_optim_cache_dir("/tmp/x")
    assert "set_optim_cache_dir('/tmp/x') has no effect" in caplog.text
    predictor = inference.create_predictor(config)
    predictor.run([image_batch[:1]])
    assert predictor.try_shrink_memory() > 0 and predictor.try_shrink_memory() == 0
