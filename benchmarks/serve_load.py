"""Load test of `edgedeploy serve` on loopback: seed 2's pair (PicoDet layout + PP-LCNet orientation).

    .venv/bin/python benchmarks/serve_load.py                     # 8 clients x 20 s, ~3 minutes
    .venv/bin/python benchmarks/serve_load.py --clients 4 --seconds 8 --runs 8    # a quick look

Every phase runs the server in its own fresh process on 127.0.0.1 and measures that process:

1. baseline: two default FP32 ONNX Runtime sessions in a fresh process (no server), each run
   ``--runs`` times: model-attributable RSS (after the runs, minus RSS after importing ORT),
   peak (VmHWM) and median latency per model.
2. served: the same two models as INT8 (``optimize()`` if the optimiser exists, else plain
   ``quantize_static`` QDQ, calibrated on generated pages) with ``memory_optimization`` (no arena),
   one shared thread pool; RSS of the server process with no model loaded, then after both are
   loaded and have served ``--runs`` requests each (binary KServe v2 over HTTP, one at a time):
   model-attributable RSS, peak, and median end-to-end request latency.
3. load: ``--clients`` concurrent clients for ``--seconds``, half on each model; at half time a new
   version of the orientation model is uploaded and hot-swapped in. Throughput, p50/p99, errors,
   RSS every 0.25 s.
4. unload: in the same server, unload PicoDet; RSS before it was loaded, with it, after unloading.

Writes benchmarks/results/serve_load.md and .json. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
MODELS = {"layout": ("picodet-layout", (1, 3, 800, 608)), "orientation": ("pplcnet-orientation", (1, 3, 224, 224))}
MB = 1 << 20


# -- models ------------------------------------------------------------------------------------
def int8_models(work: Path) -> dict[str, Path]:
    """INT8 versions of the two zoo models (cached in ``work``)."""
    from edgedeploy import datasets, engines, zoo
    from edgedeploy.tasks.layout import LayoutDetector
    from edgedeploy.tasks.orientation import OrientationClassifier

    out = {}
    tasks = {"layout": LayoutDetector, "orientation": OrientationClassifier}
    for key, (name, _) in MODELS.items():
        dst = work / f"{name}.int8.onnx"
        out[key] = dst
        if dst.exists():
            continue
        zm = zoo.fetch(name)
        try:
            from edgedeploy.optimize import optimize  # the optimiser, once it has landed
        except ImportError:
            optimize = None
        if optimize is not None:
            try:
                optimize(str(zm.path), dst, precision="int8")
                continue
            except Exception as exc:  # its API may still change: fall back to plain quantization
                print(f"optimize() failed ({exc}); quantizing with onnxruntime.quantization", file=sys.stderr)
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with engines.load(name) as s:
            task = tasks[key].from_entry(s, zm.entry)
            arrays = [task.preprocess(x.image) for x in datasets.generate("orientation", 8, seed=3)]
            iname = s.inputs[0].name

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{iname: a} for a in arrays])

            def get_next(self):
                return next(self.it, None)

        pre = work / f"{name}.pre.onnx"
        quant_pre_process(str(zm.path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def make_repo(work: Path, models: dict[str, Path]) -> Path:
    repo = work / "repo"
    if repo.exists():
        import shutil

        shutil.rmtree(repo)
    for key, path in models.items():
        d = repo / key / "1"
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes(path.read_bytes())
        (d / "config.yaml").write_text("memory_optimization: true\ninstances: 2\n")
    return repo


# -- measurements in fresh processes -----------------------------------------------------------
def _vm_hwm(pid: int | str = "self") -> int:
    m = re.search(r"^VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) * 1024


def baseline_worker(runs: int) -> dict:
    """Two default FP32 ORT sessions, as users run them: the reference for memory and latency."""
    import gc

    import onnxruntime as ort

    from edgedeploy import zoo

    feeds = {k: np.random.default_rng(0).standard_normal(shape).astype(np.float32) for k, (_, shape) in MODELS.items()}
    paths = {k: str(zoo.fetch(name).path) for k, (name, _) in MODELS.items()}
    gc.collect()
    base = psutil.Process().memory_info().rss
    Path("/proc/self/clear_refs").write_text("5")
    sessions = {k: ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
    lat = {k: [] for k in MODELS}
    for i in range(runs + 1):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {s.get_inputs()[0].name: feeds[k]})
            if i:
                lat[k].append((time.perf_counter() - t) * 1000)
    rss = psutil.Process().memory_info().rss
    return {"rss_model_bytes": rss - base, "peak_model_bytes": _vm_hwm() - base,
            "p50_ms": {k: statistics.median(v) for k, v in lat.items()}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`edgedeploy serve` in a child process (the same code path as the CLI, without the table)."""

    def __init__(self, repo: Path, threads: int | None):
        self.port = free_port()
        code = ("import sys; from edgedeploy.serving.server import ModelServer, ServerSettings, run; "
                f"run(ModelServer(sys.argv[1], ServerSettings(threads={threads!r}, poll_s=0, timeout_s=120)), "
                "host='127.0.0.1', port=int(sys.argv[2]))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(repo), str(self.port)])
        self.ps = psutil.Process(self.proc.pid)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def settle(self) -> int:
        time.sleep(0.5)
        return self.rss()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def input_body(client, key: str):
    """Use the model's real input name (read from its metadata)."""
    from edgedeploy.serving.protocol import encode_request

    meta = client.get(f"/v2/models/{key}").json()
    x = np.random.default_rng(0).standard_normal(MODELS[key][1]).astype(np.float32)
    return encode_request({meta["inputs"][0]["name"]: x}, binary=True, binary_outputs=True)


def served_phase(repo: Path, runs: int, clients: int, seconds: float, threads: int | None, new_version: bytes) -> dict:
    import httpx

    srv = Server(repo, threads)
    out: dict = {}
    try:
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            idle = srv.settle()
            Path(f"/proc/{srv.proc.pid}/clear_refs").write_text("5")
            bodies = {}
            lat = {k: [] for k in MODELS}
            rss_by_stage = {"idle": idle}
            for k in ("orientation", "layout"):  # load order: the small model first
                bodies[k] = input_body(c, k)  # metadata loads the model
                rss_by_stage[f"with_{k}"] = srv.settle()
            for i in range(runs + 1):
                for k in MODELS:
                    t = time.perf_counter()
                    r = c.post(f"/v2/models/{k}/infer", content=bodies[k][0], headers=bodies[k][1])
                    r.raise_for_status()
                    if i:
                        lat[k].append((time.perf_counter() - t) * 1000)
            steady = srv.settle()
            out["memory"] = {"idle_rss_bytes": idle, "rss_model_bytes": steady - idle,
                             "peak_model_bytes": _vm_hwm(srv.proc.pid) - idle, "stages": rss_by_stage,
                             "server": c.get("/v2/repository/memory").json()}
            out["p50_ms"] = {k: statistics.median(v) for k, v in lat.items()}
            out["load"] = load_phase(srv, bodies, clients, seconds, new_version)
            # unload: PicoDet out, memory back to where it was before PicoDet came in
            before = srv.settle()
            freed = c.post("/v2/repository/models/layout/unload").json()
            after = srv.settle()
            c.post("/v2/models/layout/infer", content=bodies["layout"][0], headers=bodies["layout"][1]).raise_for_status()
            reloaded = srv.settle()
            freed2 = c.post("/v2/repository/models/layout/unload").json()
            after2 = srv.settle()
            out["unload"] = {"rss_with_layout": before, "rss_after_unload": after, "freed_bytes": freed["freed_bytes"],
                             "rss_with_layout_again": reloaded, "rss_after_second_unload": after2,
                             "rss_before_layout_ever_loaded": rss_by_stage["with_orientation"]}
    finally:
        srv.stop()
    return out


def load_phase(srv: Server, bodies: dict, clients: int, seconds: float, new_version: bytes) -> dict:
    import httpx

    stop = threading.Event()
    records: list[tuple[float, str, int, float, str]] = []  # (t, model, status, latency ms, version)
    lock = threading.Lock()
    t0 = time.perf_counter()

    def client(i: int):
        key = ("orientation", "layout")[i % 2]
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            n = 0
            while not stop.is_set() and n < 100_000:
                n += 1
                t = time.perf_counter()
                try:
                    r = c.post(f"/v2/models/{key}/infer", content=bodies[key][0], headers=bodies[key][1])
                    status = r.status_code
                    hl = r.headers.get("inference-header-content-length")
                    version = json.loads(r.content[:int(hl)] if hl else r.content).get("model_version", "?") \
                        if status == 200 else r.text[:200]
                except httpx.HTTPError as exc:
                    status, version = -1, str(exc)[:200]
                with lock:
                    records.append((t - t0, key, status, (time.perf_counter() - t) * 1000, version))

    rss_series = []

    def sampler():
        while not stop.wait(0.25):
            rss_series.append((round(time.perf_counter() - t0, 2), srv.rss()))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)] + [threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    ts = time.perf_counter() - t0
    swap = httpx.post(f"{srv.url}/v2/repository/models/orientation/versions", content=new_version,
                      timeout=120).json()
    swap["started_s"], swap["ended_s"] = round(ts, 2), round(time.perf_counter() - t0, 2)
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
    stop.set()
    for t in threads:
        t.join(timeout=180)
    ok = [r for r in records if r[2] == 200]
    errors = [r for r in records if r[2] != 200]
    during = [r for r in records if swap["started_s"] - 1 <= r[0] <= swap["ended_s"] + 1 and r[1] == "orientation"]
    per_model = {}
    for k in MODELS:
        lat = sorted(r[3] for r in ok if r[1] == k)
        per_model[k] = {"requests": len(lat), "p50_ms": float(np.percentile(lat, 50)) if lat else None,
                        "p99_ms": float(np.percentile(lat, 99)) if lat else None}
    wall = max((r[0] for r in records), default=seconds)
    return {"clients": clients, "seconds": seconds, "requests": len(records), "errors": len(errors),
            "error_samples": [r[4] for r in errors[:5]], "throughput_rps": len(ok) / wall, "per_model": per_model,
            "swap": swap, "requests_during_swap": len(during),
            "failed_during_swap": sum(1 for r in during if r[2] != 200),
            "versions_seen": sorted({r[4] for r in ok if r[1] == "orientation"}),
            "rss_series": rss_series}


# -- report ------------------------------------------------------------------------------------
def write_report(res: dict, out: Path) -> None:
    from edgedeploy.util import atomic_write

    b, s = res["baseline"], res["served"]
    mem_ratio = s["memory"]["rss_model_bytes"] / b["rss_model_bytes"]
    peak_ratio = s["memory"]["peak_model_bytes"] / b["peak_model_bytes"]
    added = {k: s["p50_ms"][k] / b["p50_ms"][k] - 1 for k in MODELS}
    u = s["unload"]
    back = u["rss_after_unload"] / u["rss_before_layout_ever_loaded"] - 1
    load = s["load"]
    res["targets"] = {
        "memory_ratio": mem_ratio, "memory_met": mem_ratio <= 0.40, "peak_ratio": peak_ratio,
        "added_latency": added, "latency_met": all(v <= 0.10 for v in added.values()),
        "failed_across_swap": load["errors"], "swap_met": load["errors"] == 0 and load["swap"].get("ok", False),
        "unload_back": back, "unload_met": back <= 0.10,
    }
    t = res["targets"]
    yes = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    lines = [
        "# `edgedeploy serve`: two models in one small process (seed 2), under load, through a hot swap", "",
        f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; command: "
        f"`{res['command']}`; {time.strftime('%Y-%m-%d %H:%M')}.", "",
        "Memory is the resident set (RSS) of the process that holds the models, minus its RSS before any model "
        "was loaded (ORT imported, server started): *model-attributable RSS*, read after the models have run "
        f"({res['runs']} runs each). Peak is the kernel's VmHWM over the same span.", "",
        "| | baseline: 2 default FP32 ORT sessions | served: INT8, no arena, shared threads | ratio | target |",
        "|---|---|---|---|---|",
        f"| model-attributable RSS after runs | {b['rss_model_bytes'] / MB:.1f} MB | {s['memory']['rss_model_bytes'] / MB:.1f} MB "
        f"| {mem_ratio:.0%} | ≤ 40%: {yes(t['memory_met'])} |",
        f"| peak during runs (VmHWM) | {b['peak_model_bytes'] / MB:.1f} MB | {s['memory']['peak_model_bytes'] / MB:.1f} MB "
        f"| {peak_ratio:.0%} | (not a target; activations of PicoDet at 800x608 dominate) |",
    ]
    for k in MODELS:
        lines.append(f"| {MODELS[k][0]} p50 latency | {b['p50_ms'][k]:.1f} ms in-process | {s['p50_ms'][k]:.1f} ms over "
                     f"HTTP | {added[k]:+.0%} | ≤ +10%: {yes(added[k] <= 0.10)} |")
    lines += ["", "Latency: baseline is `session.run` in-process; served is a whole binary KServe v2 request over "
              "loopback, one at a time. Both on the same 2 shared cores, which other work also uses: treat "
              "differences under ~15% as noise.", "",
              f"## Load: {load['clients']} clients x {load['seconds']:g} s, half on each model", "",
              f"- requests: {load['requests']}, errors: {load['errors']} {load['error_samples'] or ''}, throughput "
              f"{load['throughput_rps']:.1f} req/s",
              ] + [f"- {MODELS[k][0]}: {v['requests']} ok, p50 {v['p50_ms'] or 0:.1f} ms, p99 {v['p99_ms'] or 0:.1f} ms"
                   for k, v in load["per_model"].items()] + [
              f"- hot swap of the orientation model at {load['swap']['started_s']} s (upload → load beside → warm-up "
              f"→ checks → switch → unload old), done at {load['swap']['ended_s']} s: ok={load['swap'].get('ok')}, "
              f"checks: {'; '.join(load['swap'].get('checks', []))}",
              f"- requests to that model within ±1 s of the swap: {load['requests_during_swap']}, failed: "
              f"{load['failed_during_swap']}; versions answered: {load['versions_seen']}; failed across the run: "
              f"{load['errors']} — target 0: {yes(t['swap_met'])}",
              f"- server RSS over the run: min {min(r for _, r in load['rss_series']) / MB:.1f} MB, max "
              f"{max(r for _, r in load['rss_series']) / MB:.1f} MB ({len(load['rss_series'])} samples, every 0.25 s; "
              "all in the .json)", "",
              "## Unload gives memory back", "",
              f"- RSS with orientation only (before PicoDet was first loaded): {u['rss_before_layout_ever_loaded'] / MB:.1f} MB",
              f"- with PicoDet loaded (after the load test): {u['rss_with_layout'] / MB:.1f} MB → after unloading it: "
              f"{u['rss_after_unload'] / MB:.1f} MB ({u['freed_bytes'] / MB:.1f} MB given back)",
              f"- after unload vs before PicoDet: {back:+.1%} — target within 10%: {yes(t['unload_met'])}",
              f"- reloaded: {u['rss_with_layout_again'] / MB:.1f} MB, unloaded again: {u['rss_after_second_unload'] / MB:.1f} MB", "",
              "Method: sessions are released, then `gc.collect()` and glibc `malloc_trim(0)` hand freed pages back "
              "to the OS; without the trim glibc keeps them in the process."]
    with atomic_write(out / "serve_load.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out / "serve_load.json", "w") as f:
        json.dump(res, f, indent=1, default=float)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=20, help="sequential runs per model for memory and latency")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--worker", choices=["baseline"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.clients, a.seconds = max(1, min(a.clients, 32)), max(1.0, min(a.seconds, 120.0))  # bounded, always
    if a.worker == "baseline":
        print(json.dumps(baseline_worker(a.runs)))
        return 0
    from edgedeploy.zoo import cache_dir

    work = cache_dir() / "serve_bench"
    work.mkdir(parents=True, exist_ok=True)
    print("preparing INT8 models ...", file=sys.stderr)
    models = int8_models(work)
    repo = make_repo(work, models)
    print("baseline: two default FP32 ORT sessions ...", file=sys.stderr)
    proc = subprocess.run([sys.executable, __file__, "--worker", "baseline", "--runs", str(a.runs)],
                          capture_output=True, text=True, check=True)
    baseline = json.loads(proc.stdout.strip().splitlines()[-1])
    # the new version for the swap: the same weights, re-saved (different bytes, a new sha256)
    import onnx

    m = onnx.load(str(models["orientation"]))
    m.doc_string = "version 2 (benchmark hot swap)"
    new_version = m.SerializeToString()
    print(f"served: {a.clients} clients x {a.seconds:g} s with a hot swap ...", file=sys.stderr)
    served = served_phase(repo, a.runs, a.clients, a.seconds, a.threads, new_version)
    res = {"command": "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "runs": a.runs, "baseline": baseline, "served": served}
    a.out.mkdir(parents=True, exist_ok=True)
    write_report(res, a.out)
    print((a.out / "serve_load.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
