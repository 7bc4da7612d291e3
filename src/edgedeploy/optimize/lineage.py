"""Which model was made from which: ``bench A B`` states B's speed-up and size ratio against A.

B was made from A when the optimize report beside B (``B.report.json``) names A as its source —
the same file, or a file with the same SHA-256 (copies and moves still match).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Derived:
    """``derived`` was made from ``source`` by ``edgedeploy optimize`` (its report says how)."""

    source: str
    derived: str
    precision: str
    engine: str


def _path(model: str) -> Path | None:
    from edgedeploy.errors import UserError
    from edgedeploy.ingest import load_model

    try:
        return load_model(model).path.resolve()
    except UserError:
        return None


def made_from(source: str, derived: str) -> Derived | None:
    """The lineage if ``derived``'s optimize report names ``source`` as the model it was made from."""
    from edgedeploy.optimize import report_path
    from edgedeploy.util import sha256_file

    rp = report_path(derived)
    a = _path(source)
    if a is None or not rp.is_file():
        return None
    try:
        rep = json.loads(rp.read_text())
    except (OSError, ValueError):
        return None
    src = rep.get("source") or ""
    same = bool(src) and Path(src).exists() and Path(src).resolve() == a
    if not same and rep.get("source_sha256"):
        same = sha256_file(a) == rep["source_sha256"]
    return Derived(source, derived, rep.get("precision", "?"), rep.get("engine", "?")) if same else None


def pairs(models: list[str]) -> list[Derived]:
    """Every (A, B) among ``models`` where B was made from A."""
    return [d for b in models for a in models if a != b and (d := made_from(a, b)) is not None]


def compare(results, pair: Derived) -> list[dict]:
    """For every configuration measured for both models (same engine, precision, shape, threads, anchor or not):
    B's speed-up (A p50 / B p50) and size ratio (A bytes / B bytes)."""
    def key(r):
        c = r.config
        return (c.engine, c.precision, tuple(c.shape), c.threads, c.untuned)

    ok = [r for r in results if r.status == "ok" and r.latency_ms.get("p50")]
    a = {key(r): r for r in ok if r.config.model == pair.source}
    rows = []
    for r in ok:
        if r.config.model == pair.derived and key(r) in a:
            ra = a[key(r)]
            rows.append({"source": pair.source, "derived": pair.derived, "made_as": f"{pair.precision} for {pair.engine}",
                         "engine": r.config.engine, "precision": r.config.precision, "untuned": r.config.untuned,
                         "speedup": round(ra.latency_ms["p50"] / r.latency_ms["p50"], 3),
                         "size_ratio": round(ra.size_bytes / r.size_bytes, 3) if ra.size_bytes and r.size_bytes else None})
    return rows


def lines(models: list[str], results) -> tuple[list[str], list[dict]]:
    """Readable lines and JSON rows: each derived model against its source, configuration by configuration."""
    out, rows = [], []
    for p in pairs(models):
        for row in compare(results, p):
            rows.append(row)
            size = f", {row['size_ratio']:.2f}x smaller" if row["size_ratio"] else ""
            out.append(f"{p.derived} (made from {p.source} by optimize: {row['made_as']}) on {row['engine']} "
                       f"{row['precision']}{' untuned' if row['untuned'] else ''}: {row['speedup']:.2f}x the "
                       f"source's speed{size} (same fresh-process measurement)")
    return out, rows
