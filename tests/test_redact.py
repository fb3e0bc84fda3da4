"""exporter.redact: every secret the process has held is removed from outward text."""

from __future__ import annotations

import base64

from exporter import redact as r


def test_password_and_the_basic_credential_in_every_form() -> None:
    r.register_credentials("CORP\\svc", "Pässw0rd-redact-1")
    pair = "CORP\\svc:Pässw0rd-redact-1"
    for shown in (
        "Pässw0rd-redact-1",
        base64.b64encode(pair.encode("utf-8")).decode(),
        base64.b64encode(pair.encode("latin-1")).decode(),
    ):
        text = r.redact(f"the EM said: {shown}!")
        assert shown not in text
        assert text == f"the EM said: {r.REDACTED}!"
    assert "Pässw0rd" not in r.redact(f"echo {pair}")


def test_tokens_are_redacted_and_the_registry_stays_bounded() -> None:
    first = "token-redact-first-0000"
    r.register_token(first)
    assert r.redact(f"id={first}") == f"id={r.REDACTED}"
    for index in range(r.TOKENS_KEPT + 10):
        r.register_token(f"token-redact-{index:06d}")
    newest = f"token-redact-{r.TOKENS_KEPT + 9:06d}"
    assert newest not in r.redact(newest)
    assert len(r._tokens) == r.TOKENS_KEPT
    # The oldest went out to make room; it is no longer in use by any EM.
    assert first in r.redact(first)


def test_header_shapes_and_short_values() -> None:
    assert r.redact("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: Basic {r.REDACTED}"
    assert r.redact('"X-RestSvcSessionId": "abc123"') == f'"X-RestSvcSessionId": "{r.REDACTED}"'
    r.register_secret("ab")  # too short: would blank out innocent text
    assert r.redact("about") == "about"


def test_a_secret_inside_another_is_removed_whole() -> None:
    r.register_secret("outer-secret-inner-redact")
    r.register_secret("inner-redact")
    assert r.redact("x outer-secret-inner-redact y") == f"x {r.REDACTED} y"
