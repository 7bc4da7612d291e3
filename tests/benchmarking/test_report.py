"""Renderers: valid CSV, JSON and Markdown with one row per result, and a PNG file; peak memory."""

from __future__ import annotations

import csv
import io
import json

from edgedeploy.benchmarking import BenchConfig, BenchResult, Skipped, add_ratios, report
from edgedeploy.benchmarking.memory import PeakRss

SHAPE = (1, 3, 32, 32)


def _results() -> list[BenchResult]:
    def ok(engine, p50, untuned=False, measured=False):
        cfg = BenchConfig(model="tiny", engine=engine, shape=SHAPE, untuned=untuned, threads=None if untuned else 2)
        return BenchResult(cfg, "ok", model_name="tiny", latency_ms={"p50": p50, "p99": p50 * 1.5, "runs": 5},
                           cold_start_ms=50.0, load_ms=40.0, throughput_ips=1000 / p50, model_memory_mb=30.0,
                           power_w=4.2, power_measured=measured, size_bytes=3 << 20, accuracy=0.95,
                           notes=["a, note | with separators"])

    bad = BenchResult(BenchConfig(model="tiny", engine="openvino", shape=SHAPE, precision="bf16"), "failed",
                      reason="openvino could not read tiny.onnx: bad | file", model_name="tiny")
    noisy = ok("openvino", 3.0, measured=True)
    noisy.system_cpu_others = 0.4
    return add_ratios([ok("onnxruntime", 4.0, untuned=True), ok("openvino", 2.0), noisy, bad])


SKIPPED = [Skipped("tiny", "1x3x32x32", "paddle", "*", "paddle runs paddle models only, not onnx")]


def test_csv_has_a_header_and_one_row_per_result_and_skip():
    rows = list(csv.DictReader(io.StringIO(report.to_csv(_results(), SKIPPED))))
    assert len(rows) == 5
    assert rows[1]["scheme"] == "openvino fp32 (edgedeploy)" and float(rows[1]["speedup"]) == 2.0
    assert rows[3]["status"] == "failed" and "bad | file" in rows[3]["reason"]
    assert rows[4]["status"] == "skipped"


def test_json_round_trips():
    data = json.loads(report.to_json(_results(), SKIPPED, machine={"cpu": "x"}))
    assert [r["status"] for r in data["results"]] == ["ok", "ok", "ok", "failed"]
    assert data["results"][1]["latency_ms"]["p50"] == 2.0 and data["machine"] == {"cpu": "x"}
    assert data["skipped"][0]["reason"].startswith("paddle runs")


def test_markdown_is_a_table_with_power_marked_estimated():
    md = report.to_markdown(_results(), SKIPPED)
    assert md.startswith(f"Method: {report.METHOD}.\n\n| model |")  # the method first: no figures without it
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4 and all(line.count(" | ") == len(report.COLUMNS) - 1 for line in table[2:])
    assert "4.20 est." in table[3] and "4.20 |" in table[4]  # estimated vs measured
    assert table[4].endswith("ok (noisy: other processes 40% CPU) |")
    assert "1.00x (ref)" in table[2] and "2.00x" in table[3]
    assert "failed: openvino could not read tiny.onnx: bad \\| file" in table[5]
    assert "skipped tiny 1x3x32x32 paddle" in md


def test_plot_and_files_are_written(tmp_path):
    written = report.write(_results(), SKIPPED, json_path=tmp_path / "r.json", csv_path=tmp_path / "r.csv",
                           markdown_path=tmp_path / "r.md", plot_path=tmp_path / "r.png")
    assert len(written) == 4
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.part"))  # atomic writes leave no temporary files behind


def test_rich_table_renders_every_row():
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(report.rich_table(_results()))
    text = console.export_text()
    assert text.count("│ tiny ") == 4 and "failed: openvino could not read" in text
    assert "1.00x (ref)" in text and "4.20 est." in text


def test_peak_rss_sees_a_short_allocation():
    peak = PeakRss().start()
    start = peak.peak()
    block = bytearray(64 << 20)
    block[:: 4096] = b"\x01" * len(block[:: 4096])  # touch every page
    del block
    assert peak.peak() - start >= 48 << 20 and peak.method
    peak.stop()
