"""What ``optimize`` did and measured: sizes, accuracy, latency, passes, layers kept in float."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class EngineTrial:
    """INT8 on one engine: the recipe, the accuracy reached, the layers kept in float, each greedy step."""

    engine: str
    recipe: str
    accuracy: float | None = None  # metric value in 0..1 of the best model within budget (or the best reached)
    within_budget: bool = False
    float_layers: list[dict] = field(default_factory=list)  # name, op, sqnr_db, contribution, reason
    steps: list[dict] = field(default_factory=list)  # {"float_layers": k, "accuracy": v}
    size_bytes: int | None = None
    error: str = ""
    # Output SQNR (dB) of the first INT8 model on its engine against the same file on ONNX Runtime
    # (the reference for Q/DQ semantics); a low figure means the engine runs the file differently.
    engine_parity_db: float | None = None


@dataclass
class OptimizeReport:
    """Everything :func:`edgedeploy.optimize.optimize` measured. Accuracy values are in 0..1;
    ``accuracy_drop_points`` is in percentage points (100 x the difference); sizes in bytes;
    latencies in ms (see ``latency_method``)."""

    model: str
    output: str
    engine: str
    precision: str
    recipe: str
    metric: str
    metric_source: str
    accuracy_before: float | None
    accuracy_after: float | None
    accuracy_drop_points: float | None
    max_accuracy_drop_points: float
    size_before: int
    size_after: int
    passes: list[str]
    nodes_before: int
    nodes_after: int
    graph_parity_max_abs_diff: float | None
    calibration: str
    latency_ms: dict[str, dict] = field(default_factory=dict)  # label -> {median_ms, min_ms, runs}
    latency_method: str = ""
    latency_before_label: str = ""  # the ORT default FP32 anchor
    latency_after_label: str = ""
    float_layers: list[dict] = field(default_factory=list)
    trials: list[EngineTrial] = field(default_factory=list)
    accuracy_before_by_engine: dict[str, float] = field(default_factory=dict)  # FP32 model, per engine
    candidate_accuracy: dict[str, float] = field(default_factory=dict)  # "fp32-graph on openvino" -> value
    notes: list[str] = field(default_factory=list)
    accuracy_ci_points: float | None = None  # 95% interval half-width of accuracy_after, in points
    fp32_baseline_label: str = ""  # the fastest FP32 configuration on the chosen engine, in latency_ms
    goal: str = "speed"
    source: str = ""  # the FP32 model the result was made from (a PyTorch model's ONNX export: OUT.fp32.onnx)
    source_sha256: str = ""  # of that file, so that `bench A B` recognises A after a copy or a move

    @property
    def size_ratio(self) -> float:
        return self.size_before / self.size_after if self.size_after else 0.0

    def latency(self, label: str) -> float | None:
        entry = self.latency_ms.get(label)
        return entry["median_ms"] if entry else None

    @property
    def speedup(self) -> float | None:
        """ORT default FP32 (the anchor) median / the result's median on its engine."""
        before, after = self.latency(self.latency_before_label), self.latency(self.latency_after_label)
        return before / after if before and after else None

    @property
    def speedup_vs_fp32(self) -> float | None:
        """The fastest FP32 configuration on the same engine / the result, in the same interleaved measurement."""
        before, after = self.latency(self.fp32_baseline_label), self.latency(self.latency_after_label)
        return before / after if before and after else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["speedup_vs_fp32_same_engine"] = None if self.speedup_vs_fp32 is None else round(self.speedup_vs_fp32, 3)
        d["size_ratio"] = round(self.size_ratio, 3)
        d["speedup_vs_ort_default"] = None if self.speedup is None else round(self.speedup, 3)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def summary_rows(self) -> list[list[str]]:
        """[what, before, after] rows for a table."""
        def pct(v):
            return "-" if v is None else f"{100 * v:.2f}"

        def ms(label):
            v = self.latency(label)
            return "-" if v is None else f"{v:.2f} ms ({label})"

        return [
            ["size", f"{self.size_before / 1e6:.2f} MB", f"{self.size_after / 1e6:.2f} MB ({self.size_ratio:.2f}x smaller)"],
            [f"accuracy: {self.metric}", pct(self.accuracy_before),
             f"{pct(self.accuracy_after)} (drop {self.accuracy_drop_points:.2f} points, budget "
             f"{self.max_accuracy_drop_points:g}" + (f", 95% CI ±{self.accuracy_ci_points:.2f}"
                                                     if self.accuracy_ci_points is not None else "") + ")" if self.accuracy_drop_points is not None else pct(self.accuracy_after)],
            ["latency", ms(self.latency_before_label),
             ms(self.latency_after_label) + (f", {self.speedup:.2f}x faster" if self.speedup else "")],
            ["vs best FP32 on its engine", ms(self.fp32_baseline_label),
             f"{self.speedup_vs_fp32:.2f}x" if self.speedup_vs_fp32 else "-"],
            ["nodes", str(self.nodes_before), str(self.nodes_after)],
        ]
