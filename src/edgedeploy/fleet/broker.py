"""A private mosquitto on loopback for tests, demos and benchmarks (never a system service).

    >>> b = LocalBroker(Path("out/broker"), users={"edge": "secret"}).start()   # 127.0.0.1:b.port
    >>> b.stop()   # killed, as a crash: clients see the connection drop

Production uses any MQTT 5 broker (mosquitto, an EMQX or HiveMQ cluster) given by address.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from edgedeploy.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout_s`` passes (TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if Path(p).exists()), None)


class LocalBroker:
    """mosquitto on 127.0.0.1:``port`` with its own config in ``directory``; ``users`` (name → password)
    turns anonymous access off. ``persistence=False``: a restart loses retained messages and sessions
    (the harsher case: the controller must re-publish what it sent)."""

    def __init__(self, directory: Path, *, port: int | None = None, users: dict[str, str] | None = None,
                 persistence: bool = False):
        binary = mosquitto_binary()
        if binary is None:
            raise UserError("mosquitto is not installed; apt-get install -y mosquitto (scripts/setup.sh does it)")
        self.binary, self.port, self.dir = binary, port or free_port(), Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = [f"listener {self.port} 127.0.0.1", f"persistence {'true' if persistence else 'false'}",
                f"persistence_location {self.dir}/", f"log_dest file {self.dir / 'mosquitto.log'}"]
        if os.geteuid() == 0:  # as root mosquitto drops to user 'mosquitto', who may not read private temp dirs
            conf.append("user root")
        if users:
            pw = self.dir / "passwd"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True)
            conf += ["allow_anonymous false", f"password_file {pw}"]
        else:
            conf.append("allow_anonymous true")
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 5.0) -> LocalBroker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"mosquitto did not start on 127.0.0.1:{self.port}; see {self.dir / 'mosquitto.log'}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
