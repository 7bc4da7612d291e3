"""Real videos encoded with PyAV into tmp_path, and a private mosquitto broker on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV not installed: pip install av")


def encode_video(path: Path, frames: int = 30, *, size=(160, 96), fps: int = 25, codec: str = "mpeg4") -> Path:
    """A real video: a white square moving right over grey, one position per frame."""
    w, h = size
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.full((h, w, 3), 90, np.uint8)
            x = (i * 4) % (w - 16)
            img[40:56, x:x + 16] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    return encode_video(tmp_path / "clip.mp4", 30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, up: bool, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'} in {timeout} s")


class Broker:
    """Our own mosquitto on 127.0.0.1:<port> with a temporary config; start/stop at will."""

    def __init__(self, binary: str, directory: Path):
        self.binary, self.port = binary, free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             f"log_dest file {directory / 'mosquitto.log'}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None
            wait_port(self.port, up=False)


@pytest.fixture
def broker_binary() -> str:
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                                if Path(p).exists()), None)
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto): no real broker to test against")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install paho-mqtt")
    return binary


@pytest.fixture
def broker(broker_binary, tmp_path):
    b = Broker(broker_binary, tmp_path)
    yield b
    b.stop()
