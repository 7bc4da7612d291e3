"""Gate-camera videos with ground truth: containers on trucks passing a fixed camera.

Each container side is a panel from :func:`edgedeploy.datasets.containers.render_panel`
(ISO 6346 code, stencil fonts, paint colours, corrugation, dirt, wear, tilt), 20 ft long, moved
across the frame at a steady speed. Per video: sky/ground/gate background, lighting (gain and a
shadow band), motion blur along the travel, sensor noise; encoded with PyAV (H.264, or MPEG-4
where libx264 is missing). The truth, written beside the video as ``<video>.json``, lists each
container's code, the frames it is visible in and the frames its whole code is in view.

    >>> from edgedeploy.datasets.gate_video import make_gate_video
    >>> truth = make_gate_video("gate.mp4", containers=5, seed=0)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedeploy.datasets._common import check_size, sample_rng
from edgedeploy.datasets.containers import render_panel
from edgedeploy.errors import UserError

FRAME_SIZE = (640, 360)  # width, height
FPS = 25
PANEL_H = 480  # render height of a container side; its length follows the 20 ft ratio
PANEL_W = 1130
SCALE = (0.58, 0.66)  # panel → frame: a container side 280-315 px tall
SPEED = (7.0, 14.0)  # px per frame at 25 FPS: a truck at walking pace
GAP = (60, 260)  # px between consecutive containers


@dataclass
class GateContainer:
    """One container: its code, the frames any of it is in view (inclusive) and the frames
    its whole code is in view (``code_first``/``code_last``; -1 if never)."""

    code: str
    first_frame: int
    last_frame: int
    code_first: int
    code_last: int


@dataclass
class GateTruth:
    """What a gate video shows: frame size and rate, and the containers in order of arrival."""

    video: str
    fps: int
    width: int
    height: int
    frames: int
    seed: int
    containers: list[GateContainer] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.containers]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> GateTruth:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no gate-video truth at {path}; make one with make_gate_video()")
        data = json.loads(path.read_text())
        data["containers"] = [GateContainer(**c) for c in data["containers"]]
        return cls(**data)


def truth_path(video: str | Path) -> Path:
    """Where the truth of ``video`` lives: ``gate.mp4`` → ``gate.json``."""
    return Path(video).with_suffix(".json")


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Sky over a concrete yard, with a gate post: float32 BGR."""
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.array([rng.uniform(170, 230), rng.uniform(150, 200), rng.uniform(120, 170)], np.float32)
    ground = np.full(3, rng.uniform(70, 130), np.float32)
    horizon = rng.uniform(0.75, 0.85)
    img = np.where(y < horizon, sky * (1 - 0.3 * y), ground * (0.8 + 0.3 * y)) * np.ones((1, w, 1), np.float32)
    post_x = int(rng.integers(0, w - 30))
    img[:, post_x:post_x + int(rng.integers(10, 24))] = rng.uniform(40, 90, 3)
    return img


def _container(rng: np.random.Generator) -> tuple[np.ndarray, str, np.ndarray]:
    """A scaled container side (uint8 BGR), its code and the bounding box of its code."""
    panel, code, boxes, _ = render_panel(rng, (PANEL_W, PANEL_H))
    scale = rng.uniform(*SCALE)
    side = cv2.resize(panel, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    pts = np.concatenate(boxes) * scale
    return side, code, np.concatenate([pts.min(0), pts.max(0)])


def _encoder(path: Path, w: int, h: int, fps: int):
    import av

    container = av.open(str(path), mode="w")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if codec == "libx264":
        stream.options = {"crf": "20", "preset": "veryfast", "tune": "zerolatency"}
    else:
        stream.bit_rate = 2_000_000
    return container, stream


def make_gate_video(path: str | Path, *, containers: int = 5, seed: int = 0, fps: int = FPS,
                    size: tuple[int, int] = FRAME_SIZE) -> GateTruth:
    """Write a gate video with ``containers`` containers to ``path`` (.mp4, .mkv or .ts) and
    its truth to ``<path>.json``; return the truth. The same seed gives the same video."""
    import av

    check_size(containers, seed)
    if containers < 1:
        raise UserError("a gate video needs at least 1 container")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = sample_rng(seed, "gatevid", 0)
    bg = _background(rng, w, h)
    gain = rng.uniform(0.65, 1.25)
    shadow = np.ones((1, w, 1), np.float32)
    if rng.random() < 0.5:  # a shadow band from the gate's roof
        x0 = int(rng.integers(0, w // 2))
        shadow[:, x0:x0 + int(rng.integers(w // 6, w // 2))] = rng.uniform(0.55, 0.8)
    speed = rng.uniform(*SPEED)
    blur = max(1, int(round(speed * rng.uniform(0.2, 0.6))))  # motion blur length, px
    noise = [rng.normal(0, rng.uniform(2, 5), (h, w, 3)).astype(np.float32) for _ in range(4)]

    # Lay the containers out along the truck lane, in panel-local x; the lane moves left.
    sides, codes = [], []
    x = float(w + rng.uniform(0, 40))
    top = int(rng.integers(h // 12, h // 5))
    for i in range(containers):
        side, code, code_box = _container(sample_rng(seed, "gatebox", i))
        sides.append((x, side, code_box))
        codes.append(code)
        x += side.shape[1] + rng.uniform(*GAP)
    frames = int(np.ceil((x - 0) / speed)) + 2

    records = [dict(first=-1, last=-1, cfirst=-1, clast=-1) for _ in range(containers)]
    out, stream = _encoder(path, w, h, fps)
    try:
        for f in range(frames):
            img = bg.copy()
            shift = f * speed
            for i, (x0, side, code_box) in enumerate(sides):
                left = int(round(x0 - shift))
                sh, sw = side.shape[:2]
                a, b = max(left, 0), min(left + sw, w)
                if a >= b:
                    continue
                bottom = min(top + sh, h)
                img[top:bottom, a:b] = side[: bottom - top, a - left:b - left]
                r = records[i]
                r["first"] = f if r["first"] < 0 else r["first"]
                r["last"] = f
                if left + code_box[0] >= 0 and left + code_box[2] < w:
                    r["cfirst"] = f if r["cfirst"] < 0 else r["cfirst"]
                    r["clast"] = f
            img *= gain * shadow
            if blur > 1:
                img = cv2.blur(img, (blur, 1))
            img += noise[f % len(noise)]
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    truth = [GateContainer(code=code, first_frame=r["first"], last_frame=r["last"],
                           code_first=r["cfirst"], code_last=r["clast"]) for code, r in zip(codes, records)]
    result = GateTruth(video=path.name, fps=fps, width=w, height=h, frames=frames, seed=seed,
                       containers=truth)
    result.save(truth_path(path))
    return result

