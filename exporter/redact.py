"""One redactor for every string that leaves the process.

Log lines, error messages, the landing page and metric label values all pass through
:func:`redact`, which removes every secret the process has held: the EM passwords, the Basic
credential built from each (``user:password`` and its base64 form, as an EM may echo the
``Authorization`` header back in an error body), the logon tokens the EMs handed out, and
anything shaped like an ``Authorization`` or ``X-RestSvcSessionId`` header. It is the last line
of defence behind code that never passes a secret on in the first place.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import deque

REDACTED = "<redacted>"
# Values shorter than this would blank out innocent words wherever they appear.
MIN_SECRET_LENGTH = 4
# Tokens are registered at every logon; the newest ones are kept, so the registry stays bounded
# while a token that may still be echoed (the current one, recent ones) is always known.
TOKENS_KEPT = 256

_HEADER_SECRETS = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|bearer)?\s*|x-restsvcsessionid[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;]+"
)
_lock = threading.Lock()
_secrets: set[str] = set()
_tokens: deque[str] = deque(maxlen=TOKENS_KEPT)
_ordered: tuple[str, ...] = ()
_generation = 0


def _refresh() -> None:
    global _ordered, _generation
    # Longest first, so that a secret containing another is removed whole.
    _ordered = tuple(sorted({*_secrets, *_tokens}, key=len, reverse=True))
    _generation += 1


def generation() -> int:
    """A number that changes whenever a secret is added: text redacted earlier, and kept,
    must be redacted again once it has changed."""
    return _generation


def register_secret(value: str) -> None:
    """Never show this value (a password, say)."""
    if len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            if value not in _secrets:
                _secrets.add(value)
                _refresh()


def register_credentials(username: str, password: str) -> None:
    """The password and the Basic credential made from it, in every form it is sent."""
    register_secret(password)
    pair = f"{username}:{password}"
    register_secret(pair)
    for encoding in ("utf-8", "latin-1"):
        try:
            register_secret(base64.b64encode(pair.encode(encoding)).decode("ascii"))
        except UnicodeEncodeError:
            continue


def register_token(token: str) -> None:
    """A logon token an EM handed out; the newest TOKENS_KEPT are kept."""
    if len(token) >= MIN_SECRET_LENGTH:
        with _lock:
            if token not in _tokens:
                _tokens.append(token)
                _refresh()


def redact(text: str) -> str:
    text = _HEADER_SECRETS.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
