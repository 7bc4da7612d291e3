"""``engine: auto``: the engine and precision measured fastest for one model on this machine, made
once and cached.

The candidates are :class:`~edgedeploy.plan.DeploymentPlan` s of the model: ONNX Runtime FP32,
OpenVINO FP32, OpenVINO BF16 where the CPU has AVX-512 BF16 or AMX, and, when an INT8 copy of the
model is given (``int8``, e.g. the one ``edgedeploy optimize`` made), that copy on OpenVINO and
ONNX Runtime. Each is opened and timed (:mod:`edgedeploy.engines.timing`) in interleaved rounds,
so a busy moment of the machine falls on all of them alike.

**Decision, clearing the noise band** (the tuner's rule, :func:`edgedeploy.deploy.tuner.choose`):
the candidates whose p50 95% interval reaches the fastest one's upper end are tied, and a more
precise one within :data:`~edgedeploy.deploy.tuner.PRECISION_TIE` (10%) above it; among them the
one that uses the least wins: the more precise precision, then the engine's order in ``ENGINES``.
A lower precision is therefore chosen only when it is clearly faster.

**Cache**: one JSON file per (machine, model digest, candidates and settings) under
``cache_dir()/engine-choice``, written atomically. The machine is the CPU model and its ISA flags
(AVX-512, AMX, ...) with the engines' versions; a new CPU, a changed model file (its sha256), a
new INT8 copy, another thread count or input shape is another key, so it is measured afresh.
The load average per core during the measurement is kept with it: a choice made while other
processes held every core (above ``BUSY``) is measured again once the machine is quiet (below ``QUIET``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.deploy.manifest import engine_versions
from edgedeploy.deploy.tuner import PRECISION_TIE, least, precision_band
from edgedeploy.engines import EngineOptions, Timing, available
from edgedeploy.engines.timing import merge
from edgedeploy.errors import UserError
from edgedeploy.plan import DeploymentPlan, ModelFile
from edgedeploy.util import atomic_write, sha256_file
from edgedeploy.vocab import Engine, Precision

log = logging.getLogger(__name__)

FORMAT = 1
BUSY, QUIET = 1.0, 0.5  # 1-minute load average per usable core
_ISA = re.compile(r"^(avx|amx|fma|f16c|sse4|vnni|asimd|sve|neon)")


@functools.cache
def this_machine() -> dict:
    """What a choice depends on besides the model: CPU model, its SIMD/matrix ISA flags, engine versions."""
    from edgedeploy.benchmarking.power import cpu_model

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    found = re.search(r"^(flags|Features)\s*:\s*(.+)$", info, re.M)
    flags = sorted({f for f in (found.group(2).split() if found else ()) if _ISA.match(f)})
    return {"cpu": cpu_model(), "isa": flags, "engines": engine_versions()}


def has_bf16(machine: dict) -> bool:
    return any(f in machine.get("isa", ()) for f in ("avx512_bf16", "amx_bf16"))


def candidates(model: str | Path, *, threads: int | None, int8: str | Path | None = None,
               reduced_precision: bool = True, machine: dict | None = None) -> list[DeploymentPlan]:
    """The plans ``engine: auto`` measures for ``model`` (in order of preference on a tie).

    reduced_precision: False keeps to FP32 (no BF16, no INT8 copy).
    """
    machine = this_machine() if machine is None else machine
    fp32 = ModelFile.of(model)
    opts = EngineOptions(threads=threads)
    have = [e for e in (Engine.ONNXRUNTIME, Engine.OPENVINO) if available(e.value)]
    plans = [DeploymentPlan(engine=e, precision=Precision.FP32, model=fp32, options=opts) for e in have]
    if reduced_precision and Engine.OPENVINO in have and has_bf16(machine):
        plans.append(DeploymentPlan(engine=Engine.OPENVINO, precision=Precision.BF16, model=fp32,
                                    options=opts.replace(precision=Precision.BF16)))
    if reduced_precision and int8 is not None:
        q = ModelFile.of(int8, source=str(model), made_by="edgedeploy.optimize int8")
        plans += [DeploymentPlan(engine=e, precision=Precision.INT8, model=q, options=opts)
                  for e in (Engine.OPENVINO, Engine.ONNXRUNTIME) if e in have]
    return plans


@dataclass
class Choice:
    """The chosen plan, every candidate's figures, and whether it came from the cache.

    measured: per candidate label, ``p50``/``p50_low``/``p50_high`` (ms) and ``runs``, or ``error``.
    """

    plan: DeploymentPlan
    measured: dict[str, dict]
    reason: str
    key: dict
    measured_at: str
    load_per_core: float = 0.0  # 1-minute load average per usable core when it was measured
    cached: bool = False
    path: Path | None = None
    tied: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a start-up report."""
        how = f"cached choice of {self.measured_at}" if self.cached else "measured now"
        how += f", load {self.load_per_core:.1f}/core"
        figures = ", ".join(f"{' '.join(k.split()[:2])} {v['p50']:.1f}" if "p50" in v else f"{k} failed"
                            for k, v in self.measured.items())
        return f"{self.plan.engine.value} {self.plan.precision.value} ({how}; p50 ms: {figures}; {self.reason})"

    def to_dict(self) -> dict:
        return {"format": FORMAT, "key": self.key, "plan": self.plan.to_dict(), "measured": self.measured,
                "reason": self.reason, "tied": self.tied, "measured_at": self.measured_at,
                "load_per_core": self.load_per_core}


def load_per_core() -> float:
    return os.getloadavg()[0] / max(len(os.sched_getaffinity(0)), 1)


def _key(plans: list[DeploymentPlan], shape, machine: dict, digests: dict[str, str]) -> dict:
    return {"machine": machine, "models": digests, "shape": list(shape),
            "candidates": [{"label": p.label, **{k: v for k, v in p.to_dict().items() if k != "model"},
                            "model": Path(p.model.path).name} for p in plans]}


def _cache_file(cache: Path, model: str | Path, key: dict) -> Path:
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache / f"{Path(model).stem}-{h}.json"


def measure(plans: list[DeploymentPlan], shape: tuple[int, ...], *, rounds: int = 3, runs: int = 15,
            budget_s: float = 0.4) -> dict[str, Timing | str]:
    """Each plan opened once and timed in ``rounds`` interleaved rounds; label → Timing, or why it failed."""
    sessions, out = {}, {}
    try:
        for p in plans:
            try:
                s = p.open()
                feeds = s.example_feeds(shape)
                s.run(feeds)  # first run: kernels chosen, memory planned
                sessions[p.label] = (s, feeds)
            except UserError as exc:  # an engine that cannot take this model: not a candidate here
                out[p.label] = str(exc).splitlines()[0][:200]
        timings: dict[str, list[Timing]] = {k: [] for k in sessions}
        for _ in range(rounds):
            for label, (s, feeds) in sessions.items():
                timings[label].append(s.time(feeds, runs=runs, warmup=1, budget_s=budget_s))
        out.update({k: merge(v) for k, v in timings.items()})
    finally:
        for s, _ in sessions.values():
            s.release()
    return out


def decide(plans: list[DeploymentPlan], timings: dict[str, Timing | str]) -> tuple[DeploymentPlan, list[str], str]:
    """(chosen plan, labels tied with the fastest, why) by the noise-band rule of the module docstring."""
    ok = [(p, timings[p.label]) for p in plans if isinstance(timings.get(p.label), Timing)]
    if not ok:
        reasons = "; ".join(f"{k}: {v}" for k, v in timings.items())
        raise UserError(f"engine auto: no candidate engine could run the model ({reasons}); name an engine")
    top = min(ok, key=lambda pt: pt[1].interval("p50")[1])
    tied = [(p, t) for p, t in ok if t.interval("p50")[0] <= top[1].interval("p50")[1] * (1 + precision_band(p, top[0]))]
    chosen, _ = min(tied, key=lambda pt: least(pt[0]))
    fastest = min(ok, key=lambda pt: pt[1].stat("p50"))
    if len(tied) == 1:
        why = "fastest beyond the noise band"
    elif fastest[0] is chosen:
        why = f"fastest; within the noise band of {', '.join(p.label for p, _ in tied if p is not chosen)}"
    else:
        why = (f"within the noise band of the fastest ({fastest[0].label}, {fastest[1].stat('p50'):.1f} ms), or less than "
               f"{PRECISION_TIE:.0%} behind it with more precision: the more precise / simpler plan wins the tie")
    return chosen, [p.label for p, _ in tied], why


def choose(model: str | Path, shape: tuple[int, ...], *, threads: int | None = 1, int8: str | Path | None = None,
           reduced_precision: bool = True, cache: str | Path | None = None, machine: dict | None = None,
           rounds: int = 3, runs: int = 15, budget_s: float = 0.4) -> Choice:
    """The measured engine choice for ``model`` (an ONNX file) fed ``shape``, from the cache when this
    machine, this model file and these candidates were measured before; else measured and cached.

    cache: the folder of choices (default ``cache_dir()/engine-choice``); machine: the machine's
    description (default :func:`this_machine`; tests pass their own).
    """
    from edgedeploy.zoo import cache_dir

    machine = this_machine() if machine is None else machine
    plans = candidates(model, threads=threads, int8=int8, reduced_precision=reduced_precision, machine=machine)
    if not plans:
        raise UserError("engine auto: neither onnxruntime nor openvino is installed; pip install onnxruntime")
    digests = {Path(p).name: sha256_file(p) for p in {p.model.path for p in plans}}
    key = _key(plans, shape, machine, digests)
    folder = Path(cache) if cache is not None else cache_dir() / "engine-choice"
    path = _cache_file(folder, model, key)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            busy_then = data.get("load_per_core", 0.0) > BUSY
            if busy_then and load_per_core() < QUIET:
                log.info("engine auto: the cached choice for %s was measured on a busy machine; measuring again",
                         Path(model).name)
            elif data.get("format") == FORMAT and data.get("key") == key:
                plan = DeploymentPlan.from_dict(data["plan"])
                return Choice(plan=plan, measured=data["measured"], reason=data["reason"], key=key,
                              measured_at=data["measured_at"], load_per_core=data.get("load_per_core", 0.0),
                              cached=True, path=path, tied=data.get("tied", []))
        except (ValueError, KeyError, UserError) as exc:  # damaged or from another version: measure again
            log.warning("engine choice cache %s unusable (%s); measuring again", path, exc)
    log.info("engine auto: measuring %d candidates for %s on this machine (once; cached in %s)",
             len(plans), Path(model).name, folder)
    load = load_per_core()
    timings = measure(plans, tuple(shape), rounds=rounds, runs=runs, budget_s=budget_s)
    plan, tied, reason = decide(plans, timings)
    measured = {k: ({"p50": v.stat("p50"), "p50_low": v.interval("p50")[0], "p50_high": v.interval("p50")[1],
                     "runs": v.runs} if isinstance(v, Timing) else {"error": v}) for k, v in timings.items()}
    choice = Choice(plan=plan.with_model(plan.model.hashed()), measured=measured, reason=reason, key=key,
                    measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), path=path, tied=tied,
                    load_per_core=max(load, load_per_core()))
    with atomic_write(path, "w") as f:
        json.dump(choice.to_dict(), f, indent=1)
    return choice
