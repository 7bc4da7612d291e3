"""Every candidate that ``optimize`` or ``deploy`` tried, as a Pareto plot and an HTML report.

The plot: x = latency (ms, log scale), y = accuracy (task metric, %), marker area ~ memory
(MiB; a fixed small marker where memory was not measured), anchors (engines' own defaults)
hollow, the chosen candidate ringed in red, the Pareto front (no other candidate both faster
and at least as accurate) joined by a line. Labels are moved apart by adjustText so that none
overlap. Candidates without an accuracy are drawn on a strip below the axis ("not scored").

The HTML report embeds the PNG and lists every candidate (latency, its 95% interval, accuracy,
memory, note), the rule the choice was made by, and the method; both files are written
atomically beside the artefact (``<artefact>.pareto.png``, ``<artefact>.report.html``).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

from edgedeploy.util import atomic_write


@dataclass(frozen=True)
class Point:
    """One candidate: ``latency_ms`` (p50), optional 95% interval, ``accuracy`` (0-1), ``memory_mb``."""

    label: str
    latency_ms: float
    accuracy: float | None = None
    memory_mb: float | None = None
    anchor: bool = False
    chosen: bool = False
    interval: tuple[float, float] | None = None
    note: str = ""


def front(points: list[Point]) -> list[Point]:
    """The Pareto front: points no other point beats on latency while being at least as accurate."""
    scored = sorted((p for p in points if p.accuracy is not None), key=lambda p: (p.latency_ms, -p.accuracy))
    out, best = [], -1.0
    for p in scored:
        if p.accuracy > best:
            out.append(p)
            best = p.accuracy
    return out


def plot_png(points: list[Point], title: str, size_label: str = "memory (MiB)") -> bytes:
    """The plot as PNG bytes (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from adjustText import adjust_text

    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=110)
    accs = [100 * p.accuracy for p in points if p.accuracy is not None]
    low = min(accs) if accs else 0.0
    span = max((max(accs) - low) if accs else 1.0, 0.5)
    unscored_y = low - 0.25 * span
    texts = []
    for p in points:
        y = 100 * p.accuracy if p.accuracy is not None else unscored_y
        size = 30 + 4 * (p.memory_mb or 5)
        colour = "tab:grey" if p.anchor else "tab:blue"
        ax.scatter(p.latency_ms, y, s=size, facecolors="none" if p.anchor else colour, edgecolors=colour,
                   linewidths=1.5, alpha=0.75, zorder=3)
        if p.chosen:
            ax.scatter(p.latency_ms, y, s=size + 160, facecolors="none", edgecolors="red", linewidths=2.2, zorder=4)
        texts.append(ax.text(p.latency_ms, y, ("★ " if p.chosen else "") + p.label, fontsize=8,
                             color="red" if p.chosen else "black", zorder=5))
    pf = front(points)
    if len(pf) > 1:
        ax.plot([p.latency_ms for p in pf], [100 * p.accuracy for p in pf], ls="--", color="tab:green", lw=1,
                label="Pareto front", zorder=2)
    if not accs:  # nothing scored (evaluation off): one strip, and the axis says so
        ax.set_yticks([unscored_y], ["not scored"])
        ax.set_ylabel("accuracy: not measured")
    elif any(p.accuracy is None for p in points):  # a strip of its own, named on the axis, below a separating line
        ax.axhline(unscored_y + 0.12 * span, color="lightgrey", lw=0.8)
        ticks = [t for t in ax.get_yticks() if t > unscored_y + 0.12 * span]
        ax.set_yticks([unscored_y, *ticks], ["not scored", *(f"{t:g}" for t in ticks)])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else ""))
    ax.set_xlabel("latency p50 (ms, log scale)")
    ax.set_ylabel("accuracy (task metric, %)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.25, y=0.25)
    handles = [plt.Line2D([], [], marker="o", ls="", color="tab:blue", label="tuned candidate"),
               plt.Line2D([], [], marker="o", ls="", mfc="none", mec="tab:grey", label="engine default (anchor)"),
               plt.Line2D([], [], marker="o", ls="", mfc="none", mec="red", mew=2, label="chosen"),
               plt.Line2D([], [], ls="", label=f"marker area ~ {size_label}")]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0][-1:] * (len(pf) > 1), fontsize=8, loc="best")
    # start each label off its point, alternating sides, so coincident points do not start stacked; adjustText's
    # default time limit (0.1 s) is too short on a busy machine: bound it by iterations instead
    for i, t in enumerate(texts):
        t.set_position((t.get_position()[0], t.get_position()[1] + (0.04 if i % 2 else -0.04) * span))
    adjust_text(texts, ax=ax, expand=(1.3, 1.8), iter_lim=1000, ensure_inside_axes=True,
                arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6})
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def html_report(points: list[Point], *, title: str, rule: str, method: str, png: bytes) -> str:
    """A self-contained HTML page: the plot, every candidate, the choice rule and the method."""
    rows = []
    for p in sorted(points, key=lambda p: p.latency_ms):
        iv = f"{p.interval[0]:.2f}–{p.interval[1]:.2f}" if p.interval else "-"
        acc = _fmt(None if p.accuracy is None else 100 * p.accuracy, ".2f")
        kind = "chosen" if p.chosen else ("anchor" if p.anchor else "")
        rows.append(f"<tr class='{kind}'><td>{html.escape(p.label)}{' ★' if p.chosen else ''}</td>"
                    f"<td>{p.latency_ms:.2f}</td><td>{iv}</td><td>{acc}</td><td>{_fmt(p.memory_mb, '.1f')}</td>"
                    f"<td>{'yes' if p.anchor else ''}</td><td>{html.escape(p.note)}</td></tr>")
    img = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}
td:first-child,td:last-child{{text-align:left}}tr.chosen{{background:#fde8e8;font-weight:bold}}
tr.anchor{{color:#555}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p><img alt="latency vs accuracy of every candidate" src="data:image/png;base64,{img}" style="max-width:100%"></p>
<h2>Every candidate tried</h2>
<table><tr><th>candidate</th><th>p50 ms</th><th>95% interval ms</th><th>accuracy %</th><th>memory MiB</th>
<th>anchor</th><th>note</th></tr>
{''.join(rows)}
</table>
<h2>How the choice was made</h2><p>{html.escape(rule)}</p>
<h2>Method</h2><p>{html.escape(method)}</p>
</body></html>
"""


def write(points: list[Point], base: str | Path, *, title: str, rule: str, method: str,
          size_label: str = "memory (MiB)") -> tuple[Path, Path]:
    """``<base>.pareto.png`` and ``<base>.report.html``; returns both paths."""
    png_path, html_path = Path(f"{base}.pareto.png"), Path(f"{base}.report.html")
    png = plot_png(points, title, size_label)
    with atomic_write(png_path) as f:
        f.write(png)
    with atomic_write(html_path, "w") as f:
        f.write(html_report(points, title=title, rule=rule, method=method, png=png))
    return png_path, html_path
