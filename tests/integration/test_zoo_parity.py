"""Every zoo model on every engine that can take it agrees with its native engine."""

from __future__ import annotations

import pytest

from edgedeploy import engines, parity, zoo

pytestmark = pytest.mark.integration

# Conversions known to fail today, with the converter's own reason: they must fail *clearly*.
KNOWN_CONVERSION_FAILURES = {(name, engine): "failed at operator pd_op.nearest_interp"
                             for name in ("ppocrv4-det-paddle",) for engine in ("onnxruntime", "ncnn")}


@pytest.mark.parametrize("name", zoo.names())
def test_engines_agree_on_zoo_model(name):
    installed = [e for e in engines.ENGINES if engines.available(e)]
    rows = parity.check_model(name, installed, runs=1, threads=2)
    assert rows[0].reason == "reference" and rows[0].status == "ok"
    compared = 0
    for row in rows[1:]:
        known = KNOWN_CONVERSION_FAILURES.get((name, row.engine))
        if known:
            assert row.status == "failed" and known in row.reason, row
        elif row.status == "n/a":
            assert engines.runnable(row.engine, zoo.entry(name).format), row
        else:
            assert row.status == "ok", f"{name} on {row.engine}: {row.max_abs_diff} > {row.tolerance} {row.reason}"
            assert 0 <= row.max_abs_diff <= row.tolerance
            compared += 1
    assert compared >= 1, f"{name}: no second engine to compare with"


def test_demo_command_prints_the_agreement_table(capsys):
    from edgedeploy.cli import main

    code = main(["demo", "--model", "ppocr-cls", "--model", "ppocr-cls-paddle", "--runs", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("agrees") >= 4 and "n/a" in out and "latency" in out
