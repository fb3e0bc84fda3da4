"""The TLS side of the web config: Go's crypto/tls names and the server's SSL context.

The exporter-toolkit format names TLS versions, client-auth modes, cipher suites and curves as
Go does; here they are mapped to Python's ``ssl`` module, and the context is built (and its
certificate files read) once, at start-up, so that a broken certificate is reported with its
key's path instead of failing every handshake.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Mapping

from exporter.validation import FieldChecker

# Names as in Go's crypto/tls, which the exporter-toolkit format uses.
TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
DEFAULT_MIN_VERSION = "TLS12"

# client_auth_type -> verify mode. RequestClientCert asks Go servers for a certificate they
# never check; Python cannot accept a certificate without verifying it, and nothing here uses
# an unverified identity, so not asking at all admits exactly the same clients.
CLIENT_AUTH_TYPES: Mapping[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's "require a certificate, any certificate" has no equivalent in Python's ssl module.
_UNSUPPORTED_CLIENT_AUTH = ("RequireAnyClientCert", "RequireClientCert")
_NEEDS_CLIENT_CA = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")

# The TLS 1.2 suites Go's tls.CipherSuites() offers, by their Go (IANA) name -> OpenSSL name.
CIPHER_SUITES: Mapping[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Listed by Go too, but TLS 1.3 suites are not configurable there either.
TLS13_CIPHER_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)
CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")


def server_context(
    checker: FieldChecker,
    path: str,
    *,
    cert_file: str,
    key_file: str,
    client_ca_file: str | None,
    auth_type: str,
    min_version: str,
    max_version: str | None,
    ciphers: tuple[str, ...],
    prefer_server: bool,
) -> ssl.SSLContext | None:
    start = len(checker.problems)
    cert_pem = checker.read_file(f"{path}.cert_file", cert_file)
    key_pem = checker.read_file(f"{path}.key_file", key_file)
    ca_pem = checker.read_file(f"{path}.client_ca_file", client_ca_file) if client_ca_file else None

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in Python; the user asked for them and is warned.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = TLS_VERSIONS[min_version]
        if max_version is not None:
            context.maximum_version = TLS_VERSIONS[max_version]
    context.verify_mode = CLIENT_AUTH_TYPES[auth_type]
    if prefer_server:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    # Only HTTP/1.x is served; saying so lets an HTTP/2-capable client settle at once.
    context.set_alpn_protocols(["http/1.1"])

    if cert_pem is not None and _pem_problem(cert_pem, "CERTIFICATE"):
        checker.add(f"{path}.cert_file", f"{cert_file} holds no PEM certificate")
        cert_pem = None
    if key_pem is not None:
        if b"ENCRYPTED" in key_pem:
            checker.add(
                f"{path}.key_file",
                f"{key_file} is encrypted; a passphrase cannot be given, store the key "
                "unencrypted (openssl pkey -in KEY -out PLAIN) and protect the file instead",
            )
            key_pem = None
        elif b"PRIVATE KEY-----" not in key_pem:
            checker.add(f"{path}.key_file", f"{key_file} holds no PEM private key")
            key_pem = None
    if cert_pem is not None and key_pem is not None:
        try:
            # The password callback stops OpenSSL prompting on the terminal.
            context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
        except (ssl.SSLError, OSError) as exc:
            if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
                checker.add(
                    f"{path}.key_file", f"{key_file} is not the key of cert_file {cert_file}"
                )
            else:
                checker.add(
                    f"{path}.key_file",
                    f"cannot load {key_file} with {cert_file}: {_ssl_reason(exc)}",
                )
    if ca_pem is not None and client_ca_file is not None:
        if _pem_problem(ca_pem, "CERTIFICATE"):
            checker.add(f"{path}.client_ca_file", f"{client_ca_file} holds no PEM certificate")
        else:
            context.load_verify_locations(cafile=client_ca_file)

    openssl_ciphers = [CIPHER_SUITES[name] for name in ciphers if name in CIPHER_SUITES]
    if openssl_ciphers:
        try:
            context.set_ciphers(":".join(openssl_ciphers))
        except ssl.SSLError:
            checker.add(
                f"{path}.cipher_suites",
                f"none of these is available in {ssl.OPENSSL_VERSION}",
            )
    return context if len(checker.problems) == start else None


def _pem_problem(data: bytes, label: str) -> bool:
    """True if ``data`` holds no parseable PEM block of this label."""
    if f"-----BEGIN {label}-----".encode() not in data:
        return True
    try:
        # Parsing into a scratch context: the real one must not trust the server certificate.
        scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        scratch.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError):
        return True
    return False


def _no_passphrase() -> bytes:
    return b""


def _ssl_reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.strerror or exc)
