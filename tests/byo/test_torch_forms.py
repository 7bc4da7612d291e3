"""PyTorch in every form: nn.Module, module.py:factory, TorchScript .pt, ExportedProgram .pt2; bad input."""

from __future__ import annotations

import textwrap

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")

from edgedeploy import cards  # noqa: E402
from edgedeploy.errors import ConversionError, UserError  # noqa: E402
from edgedeploy.ingest import from_torch  # noqa: E402
from edgedeploy.ingest.torch_export import resolve_source  # noqa: E402
from tests.byo.models import CARD, build, images, to_input  # noqa: E402

CARD_OBJ = cards.parse(CARD)


def _agrees(path, model, x):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-3, atol=1e-4)


def test_module_exports_with_dynamo_checked_against_torch(tmp_path):
    net = build("transformer")
    notes: list[str] = []
    m = from_torch(net, card=CARD_OBJ, out=tmp_path / "t.onnx", report=notes)
    assert notes[0].startswith("exported with torch.onnx dynamo exporter") and "match torch's" in notes[-1]
    _agrees(m.path, net, to_input(images(2, 9))[:1])


def test_dynamic_axes_from_the_card(tmp_path):
    net = build("unet")
    card = cards.parse({**CARD, "dynamic": {"batch": [1, 4]}})
    m = from_torch(net, card=card, out=tmp_path / "u.onnx")
    _agrees(m.path, net, to_input(images(3, 4)))  # batch 3 runs on the exported file


def test_torchscript_pt2_and_factory(tmp_path):
    net = build("resnet")
    x = to_input(images(1, 5))
    torch.jit.trace(net, x).save(str(tmp_path / "net.pt"))
    torch.export.save(torch.export.export(net, (x,)), str(tmp_path / "net.pt2"))
    (tmp_path / "mod.py").write_text(textwrap.dedent('''
        import torch
        def factory():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                       torch.nn.Flatten())
        def broken():
            raise RuntimeError("weights missing")
    '''))
    for src in ("net.pt", "net.pt2", "mod.py:factory"):
        said: list[str] = []
        onnx_path, card, exported = resolve_source(str(tmp_path / src), card=CARD_OBJ, workdir=tmp_path / f"w-{src[-6:]}",
                                                   progress=said.append)
        assert exported == onnx_path and onnx_path.exists() and any("match torch's" in s for s in said), said
        if src == "net.pt":  # TorchScript: converted to an ExportedProgram, which dynamo takes
            assert any(s.startswith("converted the TorchScript module") for s in said), said
        if src != "mod.py:factory":
            _agrees(onnx_path, net, x)
    with pytest.raises(UserError, match=r"broken\(\) raised RuntimeError: weights missing"):
        resolve_source(f"{tmp_path}/mod.py:broken", card=CARD_OBJ, workdir=tmp_path)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(UserError, match="is not a TorchScript file"):
        resolve_source(str(tmp_path / "weights.pt"), card=CARD_OBJ, workdir=tmp_path)
    with pytest.raises(UserError, match="needs its input size: give a model card"):
        resolve_source(str(tmp_path / "net.pt2"), card=None, workdir=tmp_path / "nocard")


def test_export_failure_names_the_operator_and_why_dynamo_failed(tmp_path):
    from tests.ingest.test_ingest import Unexportable

    with pytest.raises(ConversionError, match=r"operator aten::linalg_svd.*dynamo exporter failed"):
        from_torch(Unexportable(), torch.randn(3, 3), name="svd", out=tmp_path / "svd.onnx")
    assert not list(tmp_path.iterdir())


def test_torchscript_transformer_exports_traced_and_a_scripted_one_is_one_clear_line(tmp_path):
    """torch's exporters refuse a loaded TorchScript transformer (unknown ranks after ``unflatten``); the
    converter to an ExportedProgram takes the traced one. The scripted one keeps the fast path's
    control flow (``prim::If`` on modes and shapes): one line naming the operator and what to do."""
    net = build("transformer")
    x = to_input(images(1, 3))
    torch.jit.trace(net, x, check_trace=False).save(str(tmp_path / "traced.pt"))
    onnx_path, _, _ = resolve_source(str(tmp_path / "traced.pt"), card=CARD_OBJ, workdir=tmp_path / "t")
    _agrees(onnx_path, net, x)
    torch.jit.script(net).save(str(tmp_path / "scripted.pt"))
    with pytest.raises(ConversionError) as err:
        resolve_source(str(tmp_path / "scripted.pt"), card=CARD_OBJ, workdir=tmp_path / "s")
    line = str(err.value)
    assert "\n" not in line and "operator aten::is_autocast_enabled" in line and "torch.jit.trace" in line, line
    assert not (tmp_path / "s" / "scripted.onnx").exists()
