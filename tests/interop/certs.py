"""Test certificates made with the `openssl` command-line tool, at test time, in a temporary
directory (no key is ever committed).

`make_pki(directory)` writes:

* ``ca.pem`` / ``ca.key``: a test certificate authority;
* ``server.pem`` / ``server.key``: a server certificate signed by it, with the subject
  alternative names DNS:localhost and IP:127.0.0.1 (so clients can verify the host name whether
  they connect to ``localhost`` or ``127.0.0.1``);
* ``client.pem`` / ``client.key``: a client certificate (CN ``CLIENT_CN``) signed by the CA;
* ``rogue-ca.pem`` and ``rogue-client.pem`` / ``rogue-client.key``: another CA, which nothing
  trusts, and a client certificate it signed (CN ``CLIENT_CN`` as well: only the signature
  differs).

Keys are P-256 EC keys (quick to make); private keys are PKCS#8 PEM.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_CN = "certuser"
DAYS = "2"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca(self) -> str:
        return self.path("ca.pem")

    @property
    def server_cert(self) -> str:
        return self.path("server.pem")

    @property
    def server_key(self) -> str:
        return self.path("server.key")

    @property
    def client_cert(self) -> str:
        return self.path("client.pem")

    @property
    def client_key(self) -> str:
        return self.path("client.key")

    @property
    def rogue_ca(self) -> str:
        return self.path("rogue-ca.pem")

    @property
    def rogue_client_cert(self) -> str:
        return self.path("rogue-client.pem")

    @property
    def rogue_client_key(self) -> str:
        return self.path("rogue-client.key")


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")


def _make_ca(d: Path, name: str, cn: str) -> None:
    _openssl("req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", DAYS,
             "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)


def _make_leaf(d: Path, ca: str, name: str, cn: str, extensions: list[str]) -> None:
    _openssl("req", "-new", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("\n".join([
        "basicConstraints=critical,CA:FALSE",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
        *extensions,
    ]) + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", DAYS, "-sha256",
             "-extfile", ext.name, cwd=d)


def make_pki(directory: Path) -> Pki:
    """Writes the CA, server and client certificates described above into `directory`."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command-line tool is needed to make test certificates")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _make_ca(d, "ca", "Tern Test CA")
    _make_leaf(d, "ca", "server", "localhost", [
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ])
    client_ext = ["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"]
    _make_leaf(d, "ca", "client", CLIENT_CN, client_ext)
    _make_ca(d, "rogue-ca", "Rogue Test CA")
    _make_leaf(d, "rogue-ca", "rogue-client", CLIENT_CN, client_ext)
    return Pki(d)
