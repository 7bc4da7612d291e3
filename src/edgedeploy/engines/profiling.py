"""Per-layer times: where an engine spends a run, and in which precision each kernel ran.

Each engine reads its own profiler (OpenVINO ``PERF_COUNT`` / ``infer_request.profiling_info``,
ONNX Runtime ``enable_profiling`` JSON) in its module, as ``profile(model, options, feeds, runs,
untuned)``; this module holds what they return and how it is summed up.

Per layer the *mean* time over the profiled runs is kept, after :data:`WARMUP` unprofiled runs
(kernels repack weights and warm caches over the first runs): OpenVINO's counters hold only a
running mean since the model was compiled, so the mean is the one statistic both engines give.
The layers' sum is a little below a run's wall time; the rest is the engine's own scheduling
between layers and the Python call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

WARMUP = 5  # unprofiled runs first: kernels repack weights and warm caches over the first few runs

# kernel precision as engines spell it → edgedeploy's vocabulary
_PRECISIONS = {"i8": "int8", "u8": "int8", "f32": "fp32", "bf16": "bf16", "f16": "fp16", "fp32": "fp32",
               "int8": "int8", "fp16": "fp16"}


def precision_name(spelled: str) -> str:
    """``"I8"``/``"u8"`` → ``"int8"``, ``"f32"`` → ``"fp32"``, ...; anything else as given, lower-case."""
    return _PRECISIONS.get(spelled.lower(), spelled.lower())


@dataclass(frozen=True)
class LayerTime:
    """One executed layer: its name in the engine's graph, operator type, the kernel the engine chose
    (e.g. OpenVINO ``brgconv_avx512_1x1_I8``), the precision that kernel computed in, and its time (ms)."""

    name: str
    op: str
    kernel: str
    precision: str
    ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def mean_per_layer(records: Iterable[LayerTime], skip: int = 0) -> list[LayerTime]:
    """Per layer name, its mean time over its records after the first ``skip`` of them (warm-up runs), in the
    order layers first appeared."""
    seen: dict[str, list[LayerTime]] = {}
    for x in records:
        seen.setdefault(x.name, []).append(x)
    out = []
    for xs in seen.values():
        kept = xs[skip:] or xs[-1:]
        out.append(replace(kept[-1], ms=sum(x.ms for x in kept) / len(kept)))
    return out


@dataclass(frozen=True)
class Family:
    """Layers of one operator type computing in one precision: how many, their time (ms) and share."""

    op: str
    precision: str
    layers: int
    ms: float
    share: float  # of the profile's layer sum


def by_family(layers: list[LayerTime]) -> list[Family]:
    """Layers grouped by (operator type, precision), most time first."""
    total = sum(x.ms for x in layers) or 1.0
    groups: dict[tuple[str, str], list[LayerTime]] = {}
    for x in layers:
        groups.setdefault((x.op, x.precision), []).append(x)
    fams = [Family(op, prec, len(xs), sum(x.ms for x in xs), sum(x.ms for x in xs) / total)
            for (op, prec), xs in groups.items()]
    return sorted(fams, key=lambda f: -f.ms)


@dataclass(frozen=True)
class Comparison:
    """One operator type in two profiles of a model (e.g. the untuned engine and edgedeploy's choice): the time
    (ms) and precisions of its layers in each, and how many times faster the second runs it."""

    op: str
    before_ms: float
    before_precisions: str
    after_ms: float
    after_precisions: str

    @property
    def speedup(self) -> float | None:
        return self.before_ms / self.after_ms if self.after_ms > 0 and self.before_ms > 0 else None

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup}


def compare(before: list[LayerTime], after: list[LayerTime]) -> list[Comparison]:
    """Per operator type (layers of both profiles), most time in ``before`` first."""
    def per_op(layers):
        out: dict[str, tuple[float, set]] = {}
        for x in layers:
            ms, precs = out.get(x.op, (0.0, set()))
            out[x.op] = (ms + x.ms, precs | {x.precision})
        return out

    b, a = per_op(before), per_op(after)
    rows = [Comparison(op, b.get(op, (0.0, set()))[0], "/".join(sorted(b.get(op, (0, set()))[1])),
                       a.get(op, (0.0, set()))[0], "/".join(sorted(a.get(op, (0, set()))[1]))) for op in {*b, *a}]
    return sorted(rows, key=lambda r: (-r.before_ms, -r.after_ms))
