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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exporter.schema import (
    INVALID,
    FilePath,
    Flag,
    Invalid,
    Kind,
    SchemaChecker,
    Text,
    TextList,
    check_keys,
    defaults,
    key,
    settings,
)
from exporter.validation import ConfigError, PathStyle, config_dir, kind, read_yaml
from exporter.webtls import (
    CIPHER_SUITES,
    CLIENT_AUTH_TYPES,
    CURVES,
    DEFAULT_MIN_VERSION,
    TLS13_CIPHER_SUITES,
    TLS_VERSIONS,
    server_context,
)

if TYPE_CHECKING:
    import ssl

# Go's "require a certificate, any certificate" has no equivalent in Python's ssl module.
_UNSUPPORTED_CLIENT_AUTH = ("RequireAnyClientCert", "RequireClientCert")
_NEEDS_CLIENT_CA = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")

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
# Inline PEM keys of the toolkit -> the file key to use instead.
_INLINE = {"cert": "cert_file", "key": "key_file", "client_ca": "client_ca_file"}


# ---------------------------------------------------------------------------------------------
# Kinds of the web config's keys


def choice_message(value: str, choices: Iterable[str]) -> str:
    options = list(choices)
    close = difflib.get_close_matches(value, options, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"must be one of {', '.join(options)}, got {value!r}{hint}"


class GoName(Text):
    """One of a fixed set of names, spelt exactly as Go spells it."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = tuple(names)

    def check(self, value: object, minimum: float | None = None) -> str:
        text = super().check(value)
        if text not in self.names:
            raise ValueError(choice_message(text, self.names))
        return text


class ClientAuthType(GoName):
    def check(self, value: object, minimum: float | None = None) -> str:
        if isinstance(value, str) and value in _UNSUPPORTED_CLIENT_AUTH:
            raise ValueError(
                f"{value} (any certificate, unverified) cannot be enforced with Python's ssl "
                "module; use RequireAndVerifyClientCert with client_ca_file"
            )
        return super().check(value)


class GoNames(TextList):
    """A list of Go names; each unknown one is reported with its index."""

    def __init__(self, names: Iterable[str], *, ignored: Iterable[str] = ()) -> None:
        self.names = tuple(names)
        self.known = (*self.names, *ignored)

    def check(self, value: object, minimum: float | None = None) -> tuple[str, ...]:
        items = super().check(value)
        for item in items:
            if item not in self.known:
                raise ValueError(choice_message(item, self.names))
        return items

    def read(self, checker: SchemaChecker, value: object, where: str) -> tuple[str, ...] | Invalid:
        items = super().read(checker, value, where)
        if isinstance(items, Invalid):
            return INVALID
        unknown = [(i, item) for i, item in enumerate(items) if item not in self.known]
        for index, item in unknown:
            checker.add(f"{where}[{index}]", choice_message(item, self.names))
        return INVALID if unknown else items


class SubjectNames(Kind[frozenset[str]]):
    """Allowed client-certificate SANs; IP addresses compared in their compressed form."""

    def check(self, value: object, minimum: float | None = None) -> frozenset[str]:
        items = TextList().check(list(value) if isinstance(value, frozenset) else value)
        return frozenset(normalize_san(item) for item in items)

    def read(self, checker: SchemaChecker, value: object, where: str) -> frozenset[str] | Invalid:
        items = TextList().read(checker, value, where)
        return INVALID if isinstance(items, Invalid) else self.check(items)


class ResponseHeaders(Kind[tuple[tuple[str, str], ...]]):
    """The response headers exporter-toolkit allows; a blank value means "do not set"."""

    def check(self, value: object, minimum: float | None = None) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, tuple) or not all(
            isinstance(item, tuple) and len(item) == 2 and item[0] in RESPONSE_HEADERS
            for item in value
        ):
            raise ValueError("must be (name, value) pairs of allowed headers")
        return value

    def read(
        self, checker: SchemaChecker, value: object, where: str
    ) -> tuple[tuple[str, str], ...] | Invalid:
        if not isinstance(value, dict):
            checker.add(where, f"must be a mapping of header names to values, got {kind(value)}")
            return INVALID
        canonical = {name.lower(): name for name in RESPONSE_HEADERS}
        headers: list[tuple[str, str]] = []
        ok = True
        for key_, item in value.items():
            name = canonical.get(str(key_).lower()) if isinstance(key_, str) else None
            at = f"{where}.{key_}"
            if name is None:
                checker.add(
                    at, "this header cannot be configured; allowed: " + ", ".join(RESPONSE_HEADERS)
                )
                ok = False
            elif item is None or (isinstance(item, str) and not item.strip()):
                continue  # as in the toolkit: blank means "do not set"
            elif not isinstance(item, str):
                checker.add(at, f"must be a string, got {kind(item)}")
                ok = False
            elif not item.isprintable():
                checker.add(at, "must be a single line of printable characters")
                ok = False
            elif RESPONSE_HEADERS[name] and item.lower() not in RESPONSE_HEADERS[name]:
                listed = ", ".join(RESPONSE_HEADERS[name])
                checker.add(at, f"must be one of {listed}, got {item!r}")
                ok = False
            else:
                headers.append((name, item.strip()))
        return tuple(headers) if ok else INVALID


def normalize_san(value: str) -> str:
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return value


# ---------------------------------------------------------------------------------------------
# The web config


@settings
class TLSServerConfig:
    cert_file: str = key(FilePath())
    key_file: str = key(FilePath())
    client_ca_file: str | None = key(FilePath(), default=None)
    client_auth_type: str = key(ClientAuthType(CLIENT_AUTH_TYPES), default="NoClientCert")
    client_allowed_sans: frozenset[str] = key(SubjectNames(), default=frozenset())
    min_version: str = key(GoName(TLS_VERSIONS), default=DEFAULT_MIN_VERSION)
    max_version: str | None = key(GoName(TLS_VERSIONS), default=None)
    cipher_suites: tuple[str, ...] = key(
        GoNames(CIPHER_SUITES, ignored=TLS13_CIPHER_SUITES), default=()
    )
    prefer_server_cipher_suites: bool = key(Flag(), default=True)
    curve_preferences: tuple[str, ...] = key(GoNames(CURVES), default=())
    context: ssl.SSLContext = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        check_keys(self)


@settings
class HTTPServerConfig:
    # Accepted for compatibility; only HTTP/1.x is served either way.
    http2: bool = key(Flag(), default=True)
    headers: tuple[tuple[str, str], ...] = key(ResponseHeaders(), default=())


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


class _WebChecker(SchemaChecker):
    """The rules between the web config's keys; each key's own checks are its declaration's."""

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
        http = self.section(
            top.get("http_server_config", {}), "http_server_config", HTTPServerConfig
        )
        users = self.users(top.get("basic_auth_users"), "basic_auth_users")
        if self.problems or http is None:
            return None
        if tls is None and not users:
            self.warnings.append(
                "the web config sets neither tls_server_config nor basic_auth_users: "
                "the endpoints are served without TLS or basic auth"
            )
        return WebConfig(
            tls=tls,
            basic_auth_users=users,
            warnings=tuple(self.warnings),
            **{**defaults(HTTPServerConfig), **http},  # type: ignore[arg-type]
        )

    def tls(self, raw: object, path: str) -> TLSServerConfig | None:
        if raw is None or raw == {}:
            return None
        start = len(self.problems)
        found = self.section(raw, path, TLSServerConfig, also=tuple(_INLINE))
        if found is None or not isinstance(raw, dict):
            return None
        for inline, instead in _INLINE.items():
            if raw.get(inline) is not None:
                self.add(
                    f"{path}.{inline}",
                    f"inline certificates and keys are not supported; put it in a file "
                    f"and set {instead}",
                )
        values = {**defaults(TLSServerConfig), **found}
        for name in list(values):
            if f"{path}.{name}" in self.bad:
                values[name] = None  # present but wrong: the rules below skip it
        auth_type = values["client_auth_type"]
        client_ca_file = values["client_ca_file"]
        if (
            auth_type in _NEEDS_CLIENT_CA
            and client_ca_file is None
            and f"{path}.client_ca_file" not in self.bad
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
        sans = values["client_allowed_sans"]
        if sans and auth_type is not None and auth_type != "RequireAndVerifyClientCert":
            self.add(
                f"{path}.client_allowed_sans",
                "requires client_auth_type RequireAndVerifyClientCert: otherwise a client "
                "may connect without a certificate to match",
            )
        low, high = values["min_version"], values["max_version"]
        if (
            isinstance(low, str)
            and isinstance(high, str)
            and TLS_VERSIONS[high] < TLS_VERSIONS[low]
        ):
            self.add(f"{path}.max_version", f"{high} is lower than min_version {low}")
        if low in ("TLS10", "TLS11"):
            self.warnings.append(
                f"{path}.min_version: {low} is insecure, and the system's OpenSSL "
                "policy may refuse it anyway"
            )
        for index, name in enumerate(values["cipher_suites"] or ()):  # type: ignore[arg-type]
            if name in TLS13_CIPHER_SUITES:
                self.warnings.append(
                    f"{path}.cipher_suites[{index}]: {name} ignored; TLS 1.3 suites are not "
                    "configurable (as in Go)"
                )
        if values["curve_preferences"]:
            self.warnings.append(
                f"{path}.curve_preferences ignored: Python's ssl module cannot set a curve "
                "preference list; OpenSSL's default curves are used"
            )
        if len(self.problems) > start or None in (values["cert_file"], values["key_file"]):
            return None
        context = server_context(
            self,
            path,
            cert_file=str(values["cert_file"]),
            key_file=str(values["key_file"]),
            client_ca_file=client_ca_file,  # type: ignore[arg-type]
            auth_type=str(auth_type),
            min_version=str(low),
            max_version=high,  # type: ignore[arg-type]
            ciphers=values["cipher_suites"],  # type: ignore[arg-type]
            prefer_server=bool(values["prefer_server_cipher_suites"]),
        )
        if context is None:
            return None
        built = self.build(TLSServerConfig, {**values, "context": context}, path)
        return None if isinstance(built, Invalid) else built

    def users(self, raw: object, path: str) -> dict[str, bytes]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add(path, f"must be a mapping of usernames to bcrypt hashes, got {kind(raw)}")
            return {}
        users: dict[str, bytes] = {}
        for user, value in raw.items():
            where = f"{path}.{user}"
            # Never quotes the value: a hash is open to offline guessing.
            if not isinstance(user, str):
                self.add(where, f"username must be a string, got {kind(user)}; quote it")
                continue
            if not user:
                self.add(path, "a username must not be empty")
                continue
            if ":" in user:
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
            users[user] = hashed
        return users
