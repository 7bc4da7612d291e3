"""Every engine behind one interface: same outputs as ONNX Runtime, same errors for bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.engines import EngineOptions
from edgedeploy.errors import EngineMissing, UserError
from tests.conftest import installed

ONNX_ENGINES = [installed(e) for e in engines.ENGINES if "onnx" in engines.spec(e).formats]
PADDLE_FORMAT_ENGINES = [installed(e) for e in engines.ENGINES if engines.runnable(e, "paddle") is None]


def ort_reference(model, feeds):
    with engines.load(model, engine="onnxruntime") as s:
        return s.run(feeds)


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_onnx_engines_agree_with_onnxruntime(engine, tiny_onnx, image_batch):
    ref = ort_reference(tiny_onnx, {"input": image_batch})["output"]
    with engines.load(tiny_onnx, engine=engine, options=EngineOptions(threads=1)) as s:
        assert [i.name for i in s.inputs] == ["input"] and [o.name for o in s.outputs] == ["output"]
        assert s.inputs[0].shape == (None, 3, None, None)
        out = s.run({"input": image_batch})["output"]
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)  # softmax: a real computation happened


@pytest.mark.parametrize("engine", PADDLE_FORMAT_ENGINES)
def test_paddle_model_runs_on_every_engine_that_takes_it(engine, tiny_paddle, image_batch):
    with engines.load(tiny_paddle, engine="paddle") as s:
        native = s.run({"input": image_batch})["output"]
    with engines.load(tiny_paddle, engine=engine) as s:
        out = s.run({"input": image_batch})["output"]
    np.testing.assert_allclose(out, native, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("options", [
    EngineOptions(graph_optimization=False),
    EngineOptions(memory_optimization=True, threads=2),
])
@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_options_change_settings_not_results(engine, options, tiny_onnx, image_batch):
    ref = ort_reference(tiny_onnx, {"input": image_batch})["output"]
    with engines.load(tiny_onnx, engine=engine, options=options) as s:
        np.testing.assert_allclose(s.run({"input": image_batch})["output"], ref, atol=1e-5, rtol=1e-4)
        if engine == "openvino" and not options.graph_optimization:
            assert any("graph" in n for n in s.notes)  # said, not silently ignored


def test_onnxruntime_maps_options_onto_session_options():
    from edgedeploy.engines.onnxruntime import session_options

    import onnxruntime as ort

    so = session_options(EngineOptions(threads=3, graph_optimization=False, memory_optimization=True))
    assert so.intra_op_num_threads == 3
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert not so.enable_cpu_mem_arena  # a run's activations go back when it ends
    assert so.enable_mem_pattern  # ... as one planned block, not one allocation per tensor
    default = session_options(EngineOptions())
    assert default.enable_cpu_mem_arena and default.enable_mem_pattern


_ACTIVATIONS_SCRIPT = """
import json, sys
import numpy as np, onnx, psutil
from onnx import TensorProto, helper, numpy_helper
from edgedeploy import engines
from edgedeploy.engines import EngineOptions
from edgedeploy.serving.memory import configure_allocator, give_back_memory

configure_allocator()  # as the server does: large freed blocks go straight back to the OS
engines.warm_up("onnxruntime")
rng = np.random.default_rng(0)
w1 = numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w1")
w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 3, 3)).astype(np.float32), "w2")
nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),  # 1x8x512x512: 8 MB
         helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1]),  # 1x4x512x512: 4 MB
         helper.make_node("GlobalAveragePool", ["b"], ["y"])]                # a tiny output
graph = helper.make_graph(nodes, "activations", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 512, 512])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])], [w1, w2])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
x = {"x": rng.standard_normal((1, 4, 512, 512)).astype(np.float32)}
grown = {}
for memopt in (True, False):
    s = engines.load(sys.argv[1], engine="onnxruntime", options=EngineOptions(memory_optimization=memopt))
    give_back_memory()
    before = psutil.Process().memory_info().rss
    outs = [s.run(x)["y"] for _ in range(3)]
    give_back_memory()
    grown[str(memopt)] = psutil.Process().memory_info().rss - before
    assert all(np.allclose(o, outs[0]) for o in outs)
    s.release()
print(json.dumps(grown))
"""


def test_onnxruntime_memory_optimization_gives_activations_back_after_each_run(tmp_path):
    """Real ORT, real RSS, in a fresh process (the allocator setting is process-wide): with the arena
    a session keeps its activations (12 MB here) between runs; with memory_optimization it does not."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _ACTIVATIONS_SCRIPT, str(tmp_path / "act.onnx")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    grown = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 1 << 20
    assert grown["False"] > 8 * mb, grown  # the arena holds the run's activations
    assert grown["True"] < 3 * mb, grown  # memory_optimization: they went back to the OS


@pytest.mark.skipif(not engines.available("openvino"), reason="openvino not installed")
def test_openvino_fp32_means_fp32_not_the_cpus_bf16_default():
    from edgedeploy.engines.openvino import compile_config

    assert compile_config(EngineOptions())["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config(EngineOptions(precision="bf16"))["INFERENCE_PRECISION_HINT"] == "bf16"


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_gpu_requested_without_gpu_warns_and_runs_on_cpu(engine, tiny_onnx, image_batch, caplog):
    if engines.gpu_available(engine):
        pytest.skip(f"{engine} has a GPU here: the fallback path is not taken")
    with engines.load(tiny_onnx, engine=engine, options=EngineOptions(device="gpu")) as s:
        assert s.device == "cpu"
        assert any("no GPU" in n for n in s.notes)
        assert s.run({"input": image_batch})["output"].shape == (2, 4)


@pytest.mark.parametrize("feeds, message", [
    ({"x": np.zeros((1, 3, 8, 8), np.float32)}, "'x' is not an input of this model; it expects input float32 ?x3x?x?"),
    ({}, "'input' was not given"),
    ({"input": np.zeros((3, 8, 8), np.float32)}, "has rank 3 (shape 3x8x8); the model expects rank 4"),
    ({"input": np.zeros((1, 4, 8, 8), np.float32)}, "dimension 1 must be 3"),
    ({"input": np.zeros((1, 3, 8, 8), np.float64)}, "has dtype float64; the model expects float32"),
])
@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_bad_inputs_say_what_the_model_expects(engine, feeds, message, tiny_onnx):
    with engines.load(tiny_onnx, engine=engine) as s, pytest.raises(UserError) as err:
        s.run(feeds)
    assert message in str(err.value)


def test_unknown_engine_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown engine 'openvno' \(did you mean 'openvino'\?\)"):
        engines.load("x.onnx", engine="openvno")


def test_missing_engine_package_gives_the_install_command(monkeypatch, tiny_onnx):
    fake = engines.EngineSpec(**{**engines.spec("openvino").__dict__, "package": "edgedeploy_no_such_sdk"})
    monkeypatch.setitem(engines.ENGINES, "openvino", fake)
    with pytest.raises(EngineMissing, match=r"engine 'openvino' is not installed: pip install 'edgedeploy\[openvino\]'"):
        engines.load(tiny_onnx, engine="openvino")


def test_paddle_engine_refuses_onnx_and_auto_picks_the_native_engine(tiny_onnx):
    with pytest.raises(UserError, match="paddle runs paddle models only"):
        engines.load(tiny_onnx, engine="paddle")
    assert engines.resolve("auto", "onnx") == "onnxruntime"
    if engines.available("paddle"):
        assert engines.resolve("auto", "paddle") == "paddle"


def test_capability_table_is_complete():
    for name, s in engines.ENGINES.items():
        assert s.name == name and s.formats and "cpu" in s.devices and "fp32" in s.precisions
        assert set(s.options) <= {f.name for f in dataclasses.fields(EngineOptions)}  # options it honours are options


@pytest.mark.parametrize("engine", [installed(e) for e in engines.ENGINES])
def test_clone_instance_shares_the_model_and_gives_the_same_outputs(engine, tiny_onnx, tiny_paddle, image_batch):
    model = tiny_paddle if engines.runnable(engine, "onnx") else tiny_onnx
    with engines.load(model, engine=engine) as s:
        twin = s.clone_instance()
        assert twin is not s and twin.engine == s.engine
        np.testing.assert_array_equal(twin.run({"input": image_batch})["output"], s.run({"input": image_batch})["output"])


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_warm_up_pays_the_engines_fixed_cost_once(engine):
    import psutil

    engines.warm_up(engine)
    before = psutil.Process().memory_info().rss
    engines.warm_up(engine)  # a second warm-up finds everything loaded: no new libraries or pools
    assert psutil.Process().memory_info().rss - before < 20 << 20
