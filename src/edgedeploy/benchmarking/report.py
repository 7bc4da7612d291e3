"""The benchmark as people and machines read it: a rich table, JSON, CSV, Markdown and a PNG plot.

Columns follow the seed's comparison table (scheme, latency ms, memory MB, power W) plus
p99, cold start, throughput, model size, accuracy and the speed-up against the anchor.
Power from an estimate carries "est."; memory is the model's share (peak RSS above the
interpreter + engine baseline). Files are written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from edgedeploy.benchmarking.plan import Skipped
from edgedeploy.benchmarking.runner import BenchResult
from edgedeploy.util import atomic_write

COLUMNS = ["model", "shape", "scheme", "threads", "p50 ms", "p99 ms", "cold start ms", "items/s", "memory MiB",
           "power W", "size MiB", "size ratio", "accuracy", "speed-up", "status"]
NUMERIC = tuple(COLUMNS[4:14])
NOISY = 0.10  # other processes' share of the CPUs during the timed runs above which a row is marked noisy

METHOD = ("latency: p50/p99 of timed runs after warm-up, each row in a fresh process; memory: peak RSS above "
          "the interpreter + engine baseline; cold start: load + first inference; speed-up: anchor p50 / row p50, "
          "anchor = the model's native engine run untuned (ORT default for ONNX, Paddle Inference default for "
          "Paddle models) on the same (source) model and shape in the same run — an optimised model (e.g. INT8) "
          "is compared with the anchor of the FP32 model it was made from; size ratio: anchor model files / row "
          "model files (3.50x = 3.5 times smaller); power: 'est.' = estimated from CPU utilisation and an "
          "assumed TDP (no sensor)")


def _num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if abs(v) >= 10 else f"{v:.{digits + 1}f}"


def cells(r: BenchResult) -> list[str]:
    """One result as the table's strings, in :data:`COLUMNS` order."""
    c = r.config
    head = [r.model_name, c.shape_str, r.scheme, "default" if c.threads is None else str(c.threads)]
    if not r.ok:
        return head + ["-"] * 10 + [f"failed: {r.reason}"]
    power = "-" if r.power_w is None else _num(r.power_w) + ("" if r.power_measured else " est.")
    acc = "-" if r.accuracy is None else f"{r.accuracy:.1%}"
    speed = "-" if r.speedup is None else ("1.00x (ref)" if r.scheme == r.anchor_scheme else f"{r.speedup:.2f}x")
    busy = r.system_cpu_others or 0.0
    status = f"ok (noisy: other processes {busy:.0%} CPU)" if busy > NOISY else "ok"
    return head + [_num(r.p50), _num(r.latency_ms.get("p99")), _num(r.cold_start_ms), _num(r.throughput_ips),
                   _num(r.model_memory_mb), power, _num(r.size_bytes / 2**20 if r.size_bytes else None),
                   "-" if r.size_ratio is None else f"{r.size_ratio:.2f}x", acc, speed,
                   status]


def skipped_lines(skipped: list[Skipped]) -> list[str]:
    """One sentence per combination that was not run."""
    return [f"skipped {s.model} {s.shape} {s.engine} {s.precision}: {s.reason}" for s in skipped]


def rich_table(results: list[BenchResult], title: str = "benchmark"):
    """The rows as a rich Table (failed rows in red, with their reason); print :func:`skipped_lines` after it."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", caption=METHOD, caption_justify="left")
    for col in COLUMNS:
        t.add_column(col, justify="right" if col in NUMERIC else "left", overflow="fold")
    for r in results:
        t.add_row(*cells(r), style=None if r.ok else "red")
    return t


def to_json(results: list[BenchResult], skipped: list[Skipped] = (), machine: dict | None = None) -> str:
    return json.dumps({"method": METHOD, "machine": machine, "results": [r.to_dict() for r in results],
                       "skipped": [s.to_dict() for s in skipped]}, indent=2, default=str) + "\n"


def to_csv(results: list[BenchResult], skipped: list[Skipped] = ()) -> str:
    rows = [r.flat() for r in results] + [s.to_dict() for s in skipped]
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_markdown(results: list[BenchResult], skipped: list[Skipped] = (), method: str = METHOD) -> str:
    """The method paragraph, then the table, then one line per skipped combination."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [f"Method: {method.rstrip('.')}.", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in NUMERIC else "---" for c in COLUMNS) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in cells(r)) + " |" for r in results]
    notes = [f"- {esc(line)}" for line in skipped_lines(list(skipped))]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def plot(results: list[BenchResult], path: str | Path, title: str = "latency vs memory (bubble = model file size)"):
    """PNG, one panel per (model, shape): x = p50 latency (log), y = model memory MB, bubble area ~ model
    file size, one colour per engine, anchors hollow, each point labelled with its scheme."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.ok and r.p50]
    groups: dict[tuple, list[BenchResult]] = {}
    for r in ok:
        groups.setdefault((r.model_name, r.config.shape_str), []).append(r)
    engines = sorted({r.config.engine for r in ok})
    colours = dict(zip(engines, plt.get_cmap("tab10").colors))
    cols = min(len(groups), 3) or 1
    rows = math.ceil(len(groups) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), dpi=100, squeeze=False)
    for ax, ((model, shape), rs) in zip(axes.flat, groups.items()):
        for r in rs:
            colour = colours[r.config.engine]
            ax.scatter(r.p50, r.model_memory_mb, s=40 + 25 * (r.size_bytes or 0) / 2**20, linewidths=1.5,
                       facecolors="none" if r.config.untuned else colour, edgecolors=colour, alpha=0.8)
            ax.annotate(r.scheme.replace(" (edgedeploy)", ""), (r.p50, r.model_memory_mb), fontsize=7,
                        xytext=(5, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_title(f"{model} {shape}", fontsize=9)
        ax.set_xlabel("p50 latency (ms, log)", fontsize=8)
        ax.set_ylabel("model memory (MiB above baseline)", fontsize=8)
        ax.margins(x=0.35, y=0.2)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[e], label=e) for e in engines]
    handles.append(plt.Line2D([], [], marker="o", ls="", mfc="none", mec="grey", label="anchor (engine default)"))
    fig.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def write(results: list[BenchResult], skipped: list[Skipped] = (), *, json_path=None, csv_path=None,
          markdown_path=None, plot_path=None, machine: dict | None = None) -> list[Path]:
    """Write whichever outputs are given a path; returns the paths written."""
    written = []
    for path, text in ((json_path, lambda: to_json(results, skipped, machine)), (csv_path, lambda: to_csv(results, skipped)),
                       (markdown_path, lambda: to_markdown(results, skipped))):
        if path:
            with atomic_write(path, "w") as f:
                f.write(text())
            written.append(Path(path))
    if plot_path:
        plot(results, plot_path)
        written.append(Path(plot_path))
    return written
