"""Log lines: logfmt and JSON shapes, server fields, and secrets that never get through."""

from __future__ import annotations

import io
import json

import pytest

from exporter import logs


def test_logfmt_line_with_fields_and_quoting(stream: io.StringIO) -> None:
    logs.get_logger("poller", server="em01").warning(
        "poll failed", reason="auth", err='HTTP 401 "x"'
    )
    line = stream.getvalue().strip()
    assert line.startswith("ts=")
    assert " level=warn caller=exporter.poller " in line
    assert 'msg="poll failed" server=em01 reason=auth err="HTTP 401 \\"x\\""' in line
    assert "\n" not in line


def test_json_lines(stream: io.StringIO) -> None:
    out = io.StringIO()
    logs.setup("info", "json", out)
    logs.get_logger("app").info("listening", address="[::]:9745")
    logs.get_logger("app").debug("not shown")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["msg"] == "listening"
    assert record["address"] == "[::]:9745"
    assert record["level"] == "info"


def test_json_lines_keep_numbers_and_booleans_typed() -> None:
    out = io.StringIO()
    logs.setup("info", "json", out)
    logs.get_logger("poller").info(
        "poll succeeded", sessions=6818, duration=0.25, basic_auth=False, name="em01"
    )
    record = json.loads(out.getvalue())
    assert record["sessions"] == 6818 and isinstance(record["sessions"], int)
    assert record["duration"] == 0.25
    assert record["basic_auth"] is False
    assert record["name"] == "em01"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("authorization=Bearer abc.def", "abc.def"),
        ("X-RestSvcSessionId: NDRjZmJkYmUtNWE5NS00MTU2", "NDRjZmJkYmUtNWE5NS00MTU2"),
        ('{"x-restsvcsessionid": "tok123456"}', "tok123456"),
    ],
)
def test_header_shaped_secrets_are_redacted(stream: io.StringIO, text: str, leak: str) -> None:
    logs.get_logger("x").error("oops", err=text)
    line = stream.getvalue()
    assert leak not in line
    assert logs.REDACTED in line


def test_registered_passwords_are_redacted_everywhere(stream: io.StringIO) -> None:
    logs.register_secret("hunter2-Secret")
    logs.get_logger("x").info("weird hunter2-Secret", detail="pw=hunter2-Secret;")
    assert "hunter2-Secret" not in stream.getvalue()
    assert stream.getvalue().count(logs.REDACTED) == 2
