"""TLS and basic auth for the exporter's own endpoints: the exporter-toolkit ``web-config.yml``.

The file is read once, at start-up, and everything that can be wrong with it (YAML, keys,
types, unreadable or mismatched certificate files, malformed bcrypt hashes) is reported then,
every problem with its path, exactly like the main configuration. The SSL context is built
here, so a broken certificate stops the exporter before it listens instead of failing each
handshake.

Where Python's ``ssl`` module cannot do what Go's ``crypto/tls`` does, the key is either
rejected with a message saying what to use instead (``RequireAnyClientCert``, inline
certificates, ``rate_limit``) or accepted and reported in ``WebConfig.warnings`` as ignored
(``curve_preferences``). docs/web-config.md lists each case.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import ssl
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.validation import (
    ConfigError,
    FieldChecker,
    PathStyle,
    Raw,
    config_dir,
    kind,
    read_yaml,
)

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

# exporter-toolkit allows only these, so that a web config means the same in every exporter;
# a tuple of values means only those are valid.
RESPONSE_HEADERS: Mapping[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

_BCRYPT_RE = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")

_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
    "cert",
    "key",
    "client_ca",
)
_HTTP_KEYS = ("http2", "headers")
_INLINE = {"cert": "cert_file", "key": "key_file", "client_ca": "client_ca_file"}


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    context: ssl.SSLContext = field(repr=False, compare=False)
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    # Normalised: IP addresses in their compressed form, everything else as written.
    client_allowed_sans: frozenset[str] = frozenset()
    min_version: str = DEFAULT_MIN_VERSION
    max_version: str | None = None
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebConfig:
    """A loaded web config; the default (no TLS, no users, no headers) changes nothing."""

    tls: TLSServerConfig | None = None
    # username -> bcrypt hash
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True
    # Accepted settings that have no effect here; the CLI logs them at start-up.
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Loading


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """The web config in a YAML file; ConfigError lists every problem found."""
    name = os.fspath(path)
    raw = read_yaml(name)
    if raw is None:
        return WebConfig(
            warnings=(f"{name} is empty: the endpoints are served without TLS or basic auth",)
        )
    if not isinstance(raw, dict):
        raise ConfigError([f"{name}: must be a mapping, got a {kind(raw)}"])
    checker = _WebChecker(config_dir(name))
    config = checker.config(raw)
    if checker.problems or config is None:
        raise ConfigError(checker.problems)
    return config


class _WebChecker(FieldChecker):
    """The web config schema, on the main configuration's field checks so both read alike."""

    def __init__(self, base_dir: str) -> None:
        super().__init__(PathStyle(), base_dir)
        self.warnings: list[str] = []

    def config(self, raw: object) -> WebConfig | None:
        top = self.mapping(raw, "", _TOP_KEYS)
        if top is None:
            return None
        if "rate_limit" in top:
            self.add(
                "rate_limit",
                "not supported by this exporter; limit the request rate in a reverse proxy",
            )
        tls = self.tls(top.get("tls_server_config"), "tls_server_config")
        http2, headers = self.http(top.get("http_server_config"), "http_server_config")
        users = self.users(top.get("basic_auth_users"), "basic_auth_users")
        if self.problems:
            return None
        if tls is None and not users:
            self.warnings.append(
                "the web config sets neither tls_server_config nor basic_auth_users: "
                "the endpoints are served without TLS or basic auth"
            )
        return WebConfig(
            tls=tls,
            basic_auth_users=users,
            headers=headers,
            http2=http2,
            warnings=tuple(self.warnings),
        )

    # -- tls_server_config ------------------------------------------------------------------

    def tls(self, raw: object, path: str) -> TLSServerConfig | None:
        if raw is None:
            return None
        entry = self.mapping(raw, path, _TLS_KEYS)
        if entry is None or not raw:
            return None
        start = len(self.problems)
        for inline, instead in _INLINE.items():
            if inline in entry:
                self.add(
                    f"{path}.{inline}",
                    f"inline certificates and keys are not supported; put it in a file "
                    f"and set {instead}",
                )

        cert_file = self.string(entry, "cert_file", path, required="cert" not in entry)
        key_file = self.string(entry, "key_file", path, required="key" not in entry)
        client_ca_file = self.string(entry, "client_ca_file", path)
        cert_file = self.file_path(cert_file) if cert_file else None
        key_file = self.file_path(key_file) if key_file else None
        client_ca_file = self.file_path(client_ca_file) if client_ca_file else None

        auth_type = self.client_auth_type(entry, path)
        if (
            auth_type in _NEEDS_CLIENT_CA
            and client_ca_file is None
            and "client_ca_file" not in entry
        ):
            self.add(
                f"{path}.client_ca_file",
                f"required with client_auth_type {auth_type}: the CA bundle that signs "
                "the client certificates",
            )
        if client_ca_file is not None and auth_type == "NoClientCert":
            self.add(
                f"{path}.client_ca_file",
                "set client_auth_type (RequireAndVerifyClientCert) to use it; "
                "with NoClientCert it would be ignored",
            )
        sans = self.allowed_sans(entry, path, auth_type)

        min_version = self.version(entry, "min_version", path) or (
            DEFAULT_MIN_VERSION if "min_version" not in entry else None
        )
        max_version = self.version(entry, "max_version", path)
        if (
            min_version is not None
            and max_version is not None
            and TLS_VERSIONS[max_version] < TLS_VERSIONS[min_version]
        ):
            self.add(
                f"{path}.max_version",
                f"{max_version} is lower than min_version {min_version}",
            )
        if min_version in ("TLS10", "TLS11"):
            self.warnings.append(
                f"{path}.min_version: {min_version} is insecure, and the system's OpenSSL "
                "policy may refuse it anyway"
            )

        ciphers = self.ciphers(entry, path)
        prefer = self.boolean(entry, "prefer_server_cipher_suites", path)
        if prefer is None and "prefer_server_cipher_suites" not in entry:
            prefer = True
        curves = self.curves(entry, path)

        if (
            len(self.problems) > start
            or cert_file is None
            or key_file is None
            or auth_type is None
            or min_version is None
            or ciphers is None
            or prefer is None
            or curves is None
            or sans is None
        ):
            return None

        context = self.context(
            path,
            cert_file=cert_file,
            key_file=key_file,
            client_ca_file=client_ca_file,
            auth_type=auth_type,
            min_version=min_version,
            max_version=max_version,
            ciphers=ciphers,
            prefer_server=prefer,
        )
        if context is None:
            return None
        return TLSServerConfig(
            cert_file=cert_file,
            key_file=key_file,
            context=context,
            client_auth_type=auth_type,
            client_ca_file=client_ca_file,
            client_allowed_sans=sans,
            min_version=min_version,
            max_version=max_version,
            cipher_suites=ciphers,
            prefer_server_cipher_suites=prefer,
            curve_preferences=curves,
        )

    def client_auth_type(self, entry: Raw, path: str) -> str | None:
        where = f"{path}.client_auth_type"
        value = self.string(entry, "client_auth_type", path)
        if value is None:
            return "NoClientCert" if "client_auth_type" not in entry else None
        if value in _UNSUPPORTED_CLIENT_AUTH:
            self.add(
                where,
                f"{value} (any certificate, unverified) cannot be enforced with Python's ssl "
                "module; use RequireAndVerifyClientCert with client_ca_file",
            )
            return None
        if value not in CLIENT_AUTH_TYPES:
            self.add(where, _choice_message(value, CLIENT_AUTH_TYPES))
            return None
        return value

    def allowed_sans(self, entry: Raw, path: str, auth_type: str | None) -> frozenset[str] | None:
        sans = self.string_list(entry, "client_allowed_sans", path)
        if sans is None:
            return None
        if sans and auth_type is not None and auth_type != "RequireAndVerifyClientCert":
            self.add(
                f"{path}.client_allowed_sans",
                "requires client_auth_type RequireAndVerifyClientCert: otherwise a client "
                "may connect without a certificate to match",
            )
            return None
        return frozenset(normalize_san(san) for san in sans)

    def version(self, entry: Raw, key: str, path: str) -> str | None:
        value = self.string(entry, key, path)
        if value is None:
            return None
        if value not in TLS_VERSIONS:
            self.add(f"{path}.{key}", _choice_message(value, TLS_VERSIONS))
            return None
        return value

    def ciphers(self, entry: Raw, path: str) -> tuple[str, ...] | None:
        names = self.string_list(entry, "cipher_suites", path)
        if names is None:
            return None
        ok = True
        for index, name in enumerate(names):
            if name in TLS13_CIPHER_SUITES:
                self.warnings.append(
                    f"{path}.cipher_suites[{index}]: {name} ignored; TLS 1.3 suites are not "
                    "configurable (as in Go)"
                )
            elif name not in CIPHER_SUITES:
                self.add(f"{path}.cipher_suites[{index}]", _choice_message(name, CIPHER_SUITES))
                ok = False
        return names if ok else None

    def curves(self, entry: Raw, path: str) -> tuple[str, ...] | None:
        names = self.string_list(entry, "curve_preferences", path)
        if names is None:
            return None
        ok = True
        for index, name in enumerate(names):
            if name not in CURVES:
                self.add(f"{path}.curve_preferences[{index}]", _choice_message(name, CURVES))
                ok = False
        if ok and names:
            self.warnings.append(
                f"{path}.curve_preferences ignored: Python's ssl module cannot set a curve "
                "preference list; OpenSSL's default curves are used"
            )
        return names if ok else None

    def context(
        self,
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
        start = len(self.problems)
        cert_pem = self.read_file(f"{path}.cert_file", cert_file)
        key_pem = self.read_file(f"{path}.key_file", key_file)
        ca_pem = (
            self.read_file(f"{path}.client_ca_file", client_ca_file) if client_ca_file else None
        )

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
            self.add(f"{path}.cert_file", f"{cert_file} holds no PEM certificate")
            cert_pem = None
        if key_pem is not None:
            if b"ENCRYPTED" in key_pem:
                self.add(
                    f"{path}.key_file",
                    f"{key_file} is encrypted; a passphrase cannot be given, store the key "
                    "unencrypted (openssl pkey -in KEY -out PLAIN) and protect the file instead",
                )
                key_pem = None
            elif b"PRIVATE KEY-----" not in key_pem:
                self.add(f"{path}.key_file", f"{key_file} holds no PEM private key")
                key_pem = None
        if cert_pem is not None and key_pem is not None:
            try:
                # The password callback stops OpenSSL prompting on the terminal.
                context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
            except (ssl.SSLError, OSError) as exc:
                if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
                    self.add(
                        f"{path}.key_file", f"{key_file} is not the key of cert_file {cert_file}"
                    )
                else:
                    self.add(
                        f"{path}.key_file",
                        f"cannot load {key_file} with {cert_file}: {_ssl_reason(exc)}",
                    )
        if ca_pem is not None and client_ca_file is not None:
            if _pem_problem(ca_pem, "CERTIFICATE"):
                self.add(f"{path}.client_ca_file", f"{client_ca_file} holds no PEM certificate")
            else:
                context.load_verify_locations(cafile=client_ca_file)

        openssl_ciphers = [CIPHER_SUITES[name] for name in ciphers if name in CIPHER_SUITES]
        if openssl_ciphers:
            try:
                context.set_ciphers(":".join(openssl_ciphers))
            except ssl.SSLError:
                self.add(
                    f"{path}.cipher_suites",
                    f"none of these is available in {ssl.OPENSSL_VERSION}",
                )
        return context if len(self.problems) == start else None

    # -- http_server_config -----------------------------------------------------------------

    def http(self, raw: object, path: str) -> tuple[bool, tuple[tuple[str, str], ...]]:
        if raw is None:
            return True, ()
        entry = self.mapping(raw, path, _HTTP_KEYS)
        if entry is None:
            return True, ()
        # http2 is accepted for compatibility; only HTTP/1.x is served either way.
        http2 = self.boolean(entry, "http2", path)
        headers = self.headers(entry.get("headers"), f"{path}.headers")
        return (True if http2 is None else http2), headers

    def headers(self, raw: object, path: str) -> tuple[tuple[str, str], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.add(path, f"must be a mapping of header names to values, got {kind(raw)}")
            return ()
        canonical = {name.lower(): name for name in RESPONSE_HEADERS}
        headers: list[tuple[str, str]] = []
        for key, value in raw.items():
            name = canonical.get(str(key).lower()) if isinstance(key, str) else None
            where = f"{path}.{key}"
            if name is None:
                self.add(
                    where,
                    "this header cannot be configured; allowed: " + ", ".join(RESPONSE_HEADERS),
                )
                continue
            if value is None:
                continue
            if not isinstance(value, str):
                self.add(where, f"must be a string, got {kind(value)}")
                continue
            if not value.strip():
                continue  # as in the toolkit: blank means "do not set"
            if not value.isprintable():
                self.add(where, "must be a single line of printable characters")
                continue
            allowed = RESPONSE_HEADERS[name]
            if allowed and value.lower() not in allowed:
                self.add(where, f"must be one of {', '.join(allowed)}, got {value!r}")
                continue
            headers.append((name, value.strip()))
        return tuple(headers)

    # -- basic_auth_users -------------------------------------------------------------------

    def users(self, raw: object, path: str) -> dict[str, bytes]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add(path, f"must be a mapping of usernames to bcrypt hashes, got {kind(raw)}")
            return {}
        users: dict[str, bytes] = {}
        for key, value in raw.items():
            where = f"{path}.{key}"
            # Never quotes the value: a hash is open to offline guessing.
            if not isinstance(key, str):
                self.add(where, f"username must be a string, got {kind(key)}; quote it")
                continue
            if not key:
                self.add(path, "a username must not be empty")
                continue
            if ":" in key:
                self.add(where, "a username cannot contain ':' in basic auth")
                continue
            if not isinstance(value, str):
                self.add(where, f"must be a bcrypt hash (a string), got {kind(value)}")
                continue
            hashed = value.strip().encode("ascii", "replace")
            if not _BCRYPT_RE.fullmatch(hashed):
                self.add(
                    where,
                    "not a bcrypt hash: expected $2a$, $2b$ or $2y$, a two-digit cost and 53 "
                    "characters (make one with: htpasswd -nBC 10 '' | tr -d ':\\n')",
                )
                continue
            users[key] = hashed
        return users


def _choice_message(value: str, choices: Iterable[str]) -> str:
    options = list(choices)
    close = difflib.get_close_matches(value, options, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"must be one of {', '.join(options)}, got {value!r}{hint}"


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


def normalize_san(value: str) -> str:
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return value
