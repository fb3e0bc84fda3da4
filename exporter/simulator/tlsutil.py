"""A throw-away self-signed certificate, made with the openssl command-line program.

The `cryptography` package is not a dependency, and every machine that runs the tests has
openssl (CI installs it), so the certificate comes from there.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# CA:TRUE so that the certificate can be its own trust anchor (ca_file) even for verifiers
# in strict X.509 mode; the SAN covers every loopback name a client may use.
_CONFIG = """\
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no

[dn]
CN = localhost
O = veeam-em-simulator

[v3]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:::1
"""


class OpenSSLMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class CertificatePair:
    cert_file: str
    key_file: str


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def make_self_signed(directory: Path) -> CertificatePair:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OpenSSLMissingError(
            "TLS mode needs the openssl command-line program to make a self-signed certificate; "
            "install it (Debian/Ubuntu: apt-get install openssl) or run without TLS"
        )
    config = directory / "openssl.cnf"
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    config.write_text(_CONFIG, encoding="ascii")
    command = [
        openssl, "req", "-x509", "-new", "-nodes", "-sha256", "-days", "30",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(key), "-out", str(cert), "-config", str(config),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {done.stderr.strip()}")
    key.chmod(0o600)
    return CertificatePair(str(cert), str(key))
