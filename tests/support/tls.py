"""TLS for tests: a throw-away CA with server and client certificates, and socat terminating TLS.

tansu's own TLS flags do not work in the build we ship (BROKER.md), so a TLS broker in tests is
socat on one port decrypting to tansu's plaintext port, with tansu advertising the TLS port.
Certificates are made with the ``openssl`` command line, which is installed wherever socat is.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from badges.embedded_broker import free_port, wait_for_port


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 / localhost and a client certificate, as PEM files."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_both(self) -> Path:
        """Certificate + key in one file, as socat's ``cert=`` wants it."""
        return self.dir / "server-both.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client-key.pem"


def make_pki(directory: Path) -> Pki:
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=badges test CA",
             "-keyout", str(d / "ca-key.pem"), "-out", str(d / "ca.pem"))
    for name, san in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "subjectAltName=DNS:badges-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(d / f"{name}-key.pem"), "-out", str(d / f"{name}.csr"))
        (d / f"{name}.ext").write_text(san + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca-key.pem"),
                 "-CAcreateserial", "-days", "2", "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))
    (d / "server-both.pem").write_text((d / "server.pem").read_text() + (d / "server-key.pem").read_text())
    return Pki(d)


@dataclass
class TlsTerminator:
    """socat: TLS on ``port`` (optionally requiring a client certificate), plaintext to ``target``."""

    pki: Pki
    target: str
    port: int = 0
    require_client_cert: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "TlsTerminator":
        self.port = self.port or free_port()
        verify = f"verify=1,cafile={self.pki.ca}" if self.require_client_cert else "verify=0"
        self.process = subprocess.Popen(
            ["socat", f"OPENSSL-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,cert={self.pki.server_both},{verify}",
             f"TCP:{self.target}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # socat forks a child per connection
            proc.wait(5)
