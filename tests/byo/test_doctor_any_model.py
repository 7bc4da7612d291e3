"""doctor on models it has never seen: INT8 made for real and every op type ranked; a broken box head is a
problem; "the fastest" only where the noise band says so."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")

from edgedeploy import cards  # noqa: E402
from edgedeploy.deploy import doctor  # noqa: E402
from edgedeploy.ingest import from_torch, load_model  # noqa: E402
from tests.byo.models import CARD, build  # noqa: E402


def test_int8_detector_with_a_broken_box_head_is_a_problem(tmp_path):
    from_torch(build("yolo"), card=cards.parse(CARD), out=tmp_path / "det.onnx")
    report = doctor.diagnose(str(tmp_path / "det.onnx"), runs=3)
    acc = [f for f in report.findings if f.check == "accuracy" and f.status == "problem"]
    assert any(f.title.startswith("INT8 breaks output") for f in acc), [f.title for f in report.findings]
    broken = next(f for f in acc if f.title.startswith("INT8 breaks output"))
    assert any("Concat" in e for e in broken.evidence) and "keep the most sensitive nodes in float" in broken.advice[0]
    from_torch(build("resnet"), card=cards.parse(CARD), out=tmp_path / "cls.onnx")
    ok = doctor._int8_outputs(load_model(tmp_path / "cls.onnx"), (1, 3, 64, 64))
    assert ok[0].status == "ok" and any(e.startswith("#1 Gemm") or e.startswith("#1 ") for e in ok[0].evidence)


def _probe(p50, low, high):
    return {"ok": True, "p50": p50, "p50_low": low, "p50_high": high, "memory_bytes": 0, "notes": []}


def test_fastest_only_beyond_the_noise_band(tiny_onnx):
    model = load_model(tiny_onnx)
    base = _probe(10.0, 9.5, 10.5)

    def run(e, **opts):
        return {"openvino": _probe(9.8, 9.0, 10.6)}.get(e, base)

    found = doctor._slow(model, "onnxruntime", base, run, ["onnxruntime", "openvino"], 2, 2, True, "m")
    last = found[-1]
    assert "is the fastest" not in last.title and "within the noise band of openvino" in last.title
    run_faster = lambda e, **o: {"openvino": _probe(8.0, 7.8, 8.3)}.get(e, base)  # noqa: E731
    assert doctor._slow(model, "onnxruntime", base, run_faster, ["onnxruntime", "openvino"], 2, 2, True,
                        "m")[-1].status == "problem"
    run_slower = lambda e, **o: {"openvino": _probe(12.0, 11.0, 13.0)}.get(e, base)  # noqa: E731
    assert "is the fastest" in doctor._slow(model, "onnxruntime", base, run_slower, ["onnxruntime", "openvino"], 2, 2,
                                            True, "m")[-1].title
