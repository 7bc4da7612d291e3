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


def self_signed(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool):
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("edgedeploy test CA", ca_key, "edgedeploy test CA", ca_key, True)
    server = cert("127.0.0.1", server_key, "edgedeploy test CA", ca_key, False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


class LocalBroker:
    """mosquitto on 127.0.0.1:``port`` with its own config in ``directory``; ``users`` (name → password)
    turns anonymous access off. ``persistence=False``: a restart loses retained messages and sessions
    (the harsher case: the controller must re-publish what it sent)."""

    def __init__(self, directory: Path, *, port: int | None = None, users: dict[str, str] | None = None,
                 persistence: bool = False, tls: bool = False):
        binary = mosquitto_binary()
        if binary is None:
            raise UserError("mosquitto is not installed; apt-get install -y mosquitto (scripts/setup.sh does it)")
        self.binary, self.port, self.dir = binary, port or free_port(), Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = [f"listener {self.port} 127.0.0.1", f"persistence {'true' if persistence else 'false'}",
                f"persistence_location {self.dir}/", f"log_dest file {self.dir / 'mosquitto.log'}"]
        if os.geteuid() == 0:  # as root mosquitto drops to user 'mosquitto', who may not read private temp dirs
            conf.append("user root")
        self.ca: Path | None = None
        if tls:  # TLS only on this listener, with a certificate for 127.0.0.1 from a CA made here
            self.ca, cert, key = self_signed(self.dir)
            conf += [f"cafile {self.ca}", f"certfile {cert}", f"keyfile {key}"]
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
