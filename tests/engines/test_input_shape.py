"""input_shape: a model with dynamic dimensions compiled for one shape gives the same results, and only takes it."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.engines import EngineOptions
from edgedeploy.errors import UserError
from tests.conftest import installed


@pytest.mark.parametrize("engine", [installed("onnxruntime"), installed("openvino")])
def test_input_shape_compiles_for_one_shape_with_the_same_results(engine, tiny_onnx, image_batch):
    shape = image_batch.shape
    with engines.open(tiny_onnx, engine=engine, options=EngineOptions(threads=1)) as free, \
            engines.open(tiny_onnx, engine=engine, options=EngineOptions(threads=1, input_shape=shape)) as fixed:
        if engine == "openvino":  # ORT keeps reporting the symbolic dimensions; it runs them fixed all the same
            assert free.inputs[0].shape[0] is None and fixed.inputs[0].shape == shape
        np.testing.assert_allclose(fixed.run({"input": image_batch})["output"],
                                   free.run({"input": image_batch})["output"], rtol=1e-5, atol=1e-6)
        with pytest.raises(UserError):
            fixed.run({"input": image_batch[:1]})  # compiled for one shape: another is refused, not mis-run
    assert EngineOptions.from_dict(EngineOptions(input_shape=shape).to_dict()).input_shape == shape


@pytest.mark.parametrize("bad, message", [((1, 4, 32, 40), "does not fit"), ((1, 3, 32), "does not fit"),
                                          ((0, 3, 8, 8), "positive whole")])
def test_an_input_shape_that_does_not_fit_is_refused(bad, message, tiny_onnx):
    with pytest.raises(UserError, match=message):
        engines.open(tiny_onnx, engine="onnxruntime", options=EngineOptions(input_shape=bad))


@pytest.mark.integration
@pytest.mark.parametrize("engine", [installed("onnxruntime"), installed("openvino")])
def test_pplcnet_with_its_batch_fixed_answers_as_before(engine):
    """PP-LCNet's exporter left the batch open (?x3x224x224): fixed to 1, the same probabilities."""
    assert engines.dynamic_input("pplcnet-orientation")
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    opts = EngineOptions(threads=1, precision="fp32")
    with engines.open("pplcnet-orientation", engine=engine, options=opts) as free, \
            engines.open("pplcnet-orientation", engine=engine, options=opts.replace(input_shape=x.shape)) as fixed:
        name = free.inputs[0].name
        a, b = free.run({name: x}), fixed.run({name: x})
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-5)
