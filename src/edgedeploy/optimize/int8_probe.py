"""What INT8 does to a model, measured: quantize it for real, then rank every quantized node and check each output.

Used by ``doctor``: the same machinery as the optimiser's mixed precision — ONNX Runtime's static
INT8 recipe (:data:`edgedeploy.optimize.mixed.RECIPES`), then
:func:`edgedeploy.optimize.sensitivity.layer_errors` over every quantized op type (weight layers,
eltwise, Concat, attention, ...) — plus each model output's worst feature channel: a detector
whose box head joins pixel coordinates and 0..1 scores in one quantized tensor loses the scores
(one channel far below the others), which an average over the whole output hides.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.optimize import sensitivity

BROKEN_DB = 20.0  # an output channel under 20 dB SQNR (error above 10% of its variation) is broken by INT8


@dataclass(frozen=True)
class OutputDamage:
    """One model output under INT8: its worst feature channel and that channel's SQNR (dB)."""

    name: str
    channel: int
    sqnr_db: float


@dataclass(frozen=True)
class Int8Probe:
    ranked: list  # sensitivity.LayerError, largest own contribution first
    outputs: list[OutputDamage]

    @property
    def broken(self) -> list[OutputDamage]:
        return [o for o in self.outputs if o.sqnr_db < BROKEN_DB]


def probe(model_path: str | Path, feeds: list[dict], *, threads: int = 2) -> Int8Probe:
    """Quantize ``model_path`` with ONNX Runtime's recipe calibrated on ``feeds``, and measure the damage on them."""
    from edgedeploy import engines
    from edgedeploy.engines import EngineOptions
    from edgedeploy.optimize.calibration import CalibrationSet
    from edgedeploy.optimize.mixed import RECIPES
    from edgedeploy.vocab import Engine

    with tempfile.TemporaryDirectory(prefix="edgedeploy-int8probe-") as work:
        q = Path(work) / "int8.onnx"
        RECIPES[Engine.ONNXRUNTIME].quantize(model_path, q, CalibrationSet(feeds, "probe inputs"), [], work)
        ranked = sensitivity.rank(sensitivity.layer_errors(Path(model_path), q, feeds, threads=threads))
        opts = EngineOptions(threads=threads)
        with engines.load(str(model_path), engine="onnxruntime", options=opts) as f, \
                engines.load(str(q), engine="onnxruntime", options=opts) as g:
            pairs = [(f.run(x), g.run(x)) for x in feeds]
    outputs = []
    for name in pairs[0][0]:
        # against each channel's energy (not its variation over the probe inputs, which random pixels make tiny)
        sums = [sensitivity.channel_sums(a[name], b[name]) for a, b in pairs]
        num, den = sum(s[0] for s in sums), sum(s[1] for s in sums)
        db = np.array([sensitivity.sqnr_db(n / d) if d > 0 else np.inf for n, d in zip(np.atleast_1d(num),
                                                                                       np.atleast_1d(den))])
        k = int(np.argmin(db))
        outputs.append(OutputDamage(name, k, float(db[k])))
    return Int8Probe(ranked, outputs)
