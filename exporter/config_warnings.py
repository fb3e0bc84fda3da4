"""Settings that are valid but probably not what the operator meant.

None of them stops the exporter: they are logged at start-up and on a reload, and printed by
``--config.check`` after the summary.
"""

from __future__ import annotations

from exporter.config import Config, ServerConfig, format_duration

# The EM drops a logon token that has been idle this long: a longer poll interval means a
# fresh logon at every poll.
EM_TOKEN_IDLE_EXPIRY = 15 * 60.0


def config_warnings(config: Config) -> list[str]:
    """One line per questionable setting, naming the server and the key's path."""
    warnings: list[str] = []
    for index, server in enumerate(config.servers):
        where = f"servers[{index}] ({server.name})"
        warnings += [f"{where}.{line}" for line in _server_warnings(server)]
    return warnings


def _server_warnings(server: ServerConfig) -> list[str]:
    lines: list[str] = []
    if server.url.lower().startswith("http://"):
        lines.append("url: http:// sends the EM credentials in clear text; use https://")
    if server.poll_interval > EM_TOKEN_IDLE_EXPIRY:
        lines.append(
            f"poll_interval: {format_duration(server.poll_interval)} is longer than the EM's "
            f"idle token expiry ({format_duration(EM_TOKEN_IDLE_EXPIRY)}): every poll logs on "
            "again"
        )
    both = sorted(set(server.session_types.include) & set(server.session_types.exclude))
    if both:
        lines.append(
            f"session_types: {', '.join(both)} listed in both include and exclude; exclude "
            "wins, so never exported"
        )
    job_types = server.job_sessions.job_types
    both = sorted(set(job_types.include) & set(job_types.exclude))
    if both and server.job_sessions.enabled:
        lines.append(
            f"job_sessions.job_types: {', '.join(both)} listed in both include and exclude; "
            "exclude wins, so never exported"
        )
    return lines
