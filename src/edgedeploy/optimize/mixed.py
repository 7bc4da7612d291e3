"""INT8 per engine, with layers kept in float by measured sensitivity until the budget holds.

Each engine has its own INT8 recipe (:data:`RECIPES`). When the INT8 model is over the accuracy
budget, every quantized node (weight layers, eltwise, Concat, attention — see
:data:`edgedeploy.optimize.sensitivity.QUANT_OPS`) is ranked by the error it adds itself, and the
fewest are kept in float: 1, 2, 4, ... nodes until the budget holds, then a bisection between the
last count that failed and the first that held — as NNCF's accuracy-aware quantization does,
with the engine's own quantizer and ``exclude`` (ORT ``nodes_to_exclude``, NNCF ``ignored_scope``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.optimize import sensitivity
from edgedeploy.optimize.report import EngineTrial
from edgedeploy.vocab import Engine

MAX_FLOAT_SHARE = 0.5  # beyond half the layers in float, INT8 no longer pays: stop and say so


@dataclass(frozen=True)
class Recipe:
    """How INT8 is made for one engine: ``quantize(float_path, out_path, calib, exclude, workdir)``."""

    name: str
    description: str
    quantize: Callable


def _ort_qdq(src, out, calib, exclude, work):
    from edgedeploy.optimize import quantize_ort

    quantize_ort.quantize_static(src, out, calib, exclude=exclude, cache=Path(work) / "ort-ranges.json")


def _nncf(src, out, calib, exclude, work):
    from edgedeploy.optimize import quantize_openvino

    quantize_openvino.quantize(src, out, calib, exclude=exclude)


# Engines that run an INT8 ONNX model, and the recipe that makes INT8 fast on each (measured:
# benchmarks/compression_table.py). Paddle Inference runs Paddle-format models only.
RECIPES: dict[Engine, Recipe] = {
    Engine.ONNXRUNTIME: Recipe("ort-static-qdq-u8s8", "ONNX Runtime quantize_static: QDQ, U8 activations, S8 "
                               "per-channel weights, all ops with INT8 kernels", _ort_qdq),
    Engine.OPENVINO: Recipe("nncf-qdq", "NNCF post-training INT8 (OpenVINO placement, fast bias correction), QDQ ONNX",
                            _nncf),
}


def engine_parity(path: Path, engine: str, feeds: list[dict], threads: int) -> float:
    """Output SQNR in dB (worst output) of ``path`` on ``engine`` against ONNX Runtime on the same file."""
    from edgedeploy import engines
    from edgedeploy.engines import EngineOptions

    opts = EngineOptions(threads=threads)
    with engines.load(str(path), engine="onnxruntime", options=opts) as ref, \
            engines.load(str(path), engine=engine, options=opts) as other:
        pairs = [(ref.run(f), other.run(f)) for f in feeds]
    return min(sensitivity.sqnr_db(sum(float(np.sum((b[k].astype(np.float64) - a[k]) ** 2)) for a, b in pairs)
                                   / max(sum(float(np.sum(a[k].astype(np.float64) ** 2)) for a, _ in pairs), 1e-30))
               for k in pairs[0][0])


def int8_trial(engine: Engine, g_path: Path, work: Path, calib_set, scorer, before: float, budget: float,
               max_float_share: float, say, threads: int = 2) -> EngineTrial:
    """INT8 for ``engine`` from the float model ``g_path``; over budget, the fewest sensitive nodes back to float.

    ``budget``: the most the metric may fall, as a fraction (points / 100). The best model reached is
    left at ``work/int8-<engine>.onnx``; the trial says whether it is within budget.
    """
    recipe = RECIPES[engine]
    trial = EngineTrial(str(engine), recipe.name)
    out = work / f"int8-{engine}.onnx"
    say(f"INT8 for {engine} ({recipe.name})")
    try:
        recipe.quantize(g_path, out, calib_set, [], work)
    except UserError as exc:
        trial.error = str(exc)
        return trial
    if engine is not Engine.ONNXRUNTIME:
        trial.engine_parity_db = engine_parity(out, engine, calib_set.feeds[:4], threads)
    acc = scorer(out, engine)
    trial.steps.append({"float_layers": 0, "accuracy": acc})
    trial.accuracy, trial.size_bytes = acc, out.stat().st_size
    if before - acc <= budget + 1e-12:
        trial.within_budget = True
        return trial
    say(f"{engine}: INT8 drops {100 * (before - acc):.2f} points; measuring each node's own error")
    ranked = sensitivity.rank(sensitivity.layer_errors(g_path, out, calib_set.feeds, threads=threads))
    # largest own contribution first; the cap on float layers counts every quantized layer (a share of
    # those adding error would stop a model whose error is spread over few layers too early)
    best_path, step_path = work / f"int8-{engine}-best.onnx", work / f"int8-{engine}-step.onnx"
    shutil.copyfile(out, best_path)
    tried: dict[int, float] = {0: acc}

    def attempt(k: int) -> bool:
        keep = ranked[:k]
        say(f"{engine}: {k} node(s) in float")
        recipe.quantize(g_path, step_path, calib_set, [e.name for e in keep], work)
        acc_k = scorer(step_path, engine)
        tried[k] = acc_k
        trial.steps.append({"float_layers": k, "accuracy": acc_k})
        ok = before - acc_k <= budget + 1e-12
        # the best model so far: within budget with the fewest float nodes, else the most accurate
        if (ok and (not trial.within_budget or k < len(trial.float_layers))) or \
                (not trial.within_budget and not ok and acc_k > trial.accuracy):
            trial.accuracy, trial.within_budget = acc_k, ok
            os.replace(step_path, best_path)
            trial.float_layers = [{**e.to_dict(), "reason": f"largest own error contribution #{i + 1} "
                                   f"(output SQNR {e.sqnr_db:.1f} dB)"} for i, e in enumerate(keep)]
        return ok

    lo = 0
    for k in sensitivity.float_counts(len(ranked), max_float_share):
        if attempt(k):
            hi = k
            while hi - lo > 1:  # fewest: bisect between the last count that failed and the first that held
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if attempt(mid) else (mid, hi)
            break
        lo = k
    os.replace(best_path, out)
    trial.size_bytes = out.stat().st_size
    return trial


def over_budget_message(precision: str, trials, fallbacks: dict, before: dict, metric: str, max_drop: float) -> str:
    """One line: no model met the budget; the best each attempt reached. ``fallbacks``: label → (engine, accuracy)."""
    parts = []
    for t in trials:
        if t.error:
            parts.append(f"{t.engine}: {t.error}")
        elif t.accuracy is not None:
            drop = 100 * (before[t.engine] - t.accuracy)
            parity = "" if t.engine_parity_db is None else (
                f"; its INT8 outputs are {t.engine_parity_db:.1f} dB SQNR from ONNX Runtime's on the same file")
            kept = ", ".join(f"{f['op']} {f['name']}" for f in t.float_layers[:3])
            kept += ", ..." if len(t.float_layers) > 3 else ""
            parts.append(f"{t.engine}: best {100 * t.accuracy:.2f} ({drop:.2f} points down) with "
                         f"{len(t.float_layers)} layer(s) kept in float{f' ({kept})' if kept else ''}{parity}")
    for label, (e, acc) in fallbacks.items():
        parts.append(f"{label}: {100 * acc:.2f} ({100 * (before[e] - acc):.2f} points down)")
    return (f"no {precision} model meets max_accuracy_drop {max_drop:g} points on {metric} (FP32: "
            + ", ".join(f"{100 * v:.2f} on {e}" for e, v in before.items()) + "); best reached — "
            + "; ".join(parts) + "; nothing was written. Raise the budget, give more or better calibration data, "
            "or use precision fp32")
