"""The Pareto plot and HTML report written beside an artefact: every candidate, the chosen one marked."""

from __future__ import annotations

from edgedeploy.benchmarking import pareto

POINTS = [pareto.Point("ORT default (anchor)", 6.0, 0.99, 25.0, anchor=True, interval=(5.8, 6.3)),
          pareto.Point("OpenVINO default (anchor)", 2.0, None, 22.0, anchor=True),
          pareto.Point("openvino int8 t2 b1", 1.4, 0.985, 20.0, chosen=True, interval=(1.3, 1.5)),
          pareto.Point("openvino bf16 t2 b1", 1.9, 0.99, 23.0),
          pareto.Point("onnxruntime int8 t2 b1", 7.0, 0.98, 26.0)]


def test_front_keeps_only_candidates_no_other_beats():
    assert [p.label for p in pareto.front(POINTS)] == ["openvino int8 t2 b1", "openvino bf16 t2 b1"]


def test_png_and_html_are_written_with_every_candidate(tmp_path):
    png, page = pareto.write(POINTS, tmp_path / "model", title="t", rule="the rule <b>", method="m")
    assert png.name == "model.pareto.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert all(p.label in text for p in POINTS) and "the rule &lt;b&gt;" in text  # escaped
    assert "<tr class='chosen'><td>openvino int8 t2 b1 ★" in text and "data:image/png;base64," in text
    none_scored = [pareto.Point(p.label, p.latency_ms) for p in POINTS]  # evaluation off: still drawn
    assert pareto.plot_png(none_scored, "t")[:4] == b"\x89PNG"
