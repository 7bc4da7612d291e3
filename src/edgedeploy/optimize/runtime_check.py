"""Accuracy of a run-time precision (BF16/FP16 lowered by the engine) on the user's data, like INT8's.

The tuner's harness measures accuracy only for zoo models (their generated, labelled data). For
any other model, :func:`runtime_accuracy` scores the FP32 model at ``precision`` on ``engine``
with the optimiser's own guard (:class:`edgedeploy.optimize.guard.HeldOutScorer`): the same
held-out samples as ``optimize`` (the card's preprocessing, split by the same seed), the same
metric (the task's with labels, else agreement with FP32), so every precision the tuner may
pick is checked against one budget in one unit.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RuntimeCheck:
    """FP32's and ``precision``'s metric (0..1) on one engine, what was measured, and on what."""

    reference: float
    accuracy: float
    metric: str
    source: str

    @property
    def drop_points(self) -> float:
        return 100 * (self.reference - self.accuracy)


class RuntimeChecker:
    """One held-out set for a model, scored at every (engine, precision) asked; the export and data are read once."""

    def __init__(self, model, *, card=None, calib=None, data=None, threads: int = 2):
        self.model, self.card, self.calib, self.data, self.threads = model, card, calib, data, threads
        self._work = None
        self._scorer = None

    def _setup(self):
        from edgedeploy import engines
        from edgedeploy.ingest import load_model
        from edgedeploy.ingest.torch_export import resolve_source
        from edgedeploy.optimize import calibration, guard, user_data

        self._work = tempfile.TemporaryDirectory(prefix="edgedeploy-check-")
        m, card_obj, _ = resolve_source(self.model, card=self.card, workdir=Path(self._work.name))
        m = load_model(m)
        self._src = m.onnx_path()
        fp32 = engines.load(str(self._src), engine="onnxruntime", options=engines.EngineOptions(threads=self.threads))
        try:
            if self.calib is not None or self.data is not None:  # the held-out samples optimize scores on
                _, held = user_data.prepare(fp32, self._src, card_obj, calib=self.calib, data=self.data,
                                            calib_samples=None, eval_samples=None, method="default",
                                            min_calib=calibration.MIN_SAMPLES)
            else:
                held = user_data.random_held_out(fp32, m, None)
        finally:
            fp32.release()
        self._scorer = guard.HeldOutScorer(held.feeds, ref_path=self._src, labels=held.labels, source=held.source,
                                           threads=self.threads, task=card_obj.task if card_obj else None,
                                           boxes=held.boxes)

    def check(self, engine: str, precision: str) -> RuntimeCheck:
        if self._scorer is None:
            self._setup()
        ref = self._scorer.score(self._src, engine).value
        acc = self._scorer.score(self._src, engine, precision).value
        return RuntimeCheck(ref, acc, self._scorer.metric, self._scorer.source)

    def close(self) -> None:
        if self._work is not None:
            self._work.cleanup()
