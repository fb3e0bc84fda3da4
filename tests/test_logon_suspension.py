"""A reload ends a suspension of logons, whether it restarts the server's poller or keeps it,
and a removed server takes its suspension gauge along."""

from __future__ import annotations

from dataclasses import replace

from accounts import Account
from prometheus_client import CollectorRegistry

from exporter.app import Exporter
from exporter.config import Config, ServerConfig

T0 = 1_738_022_400.0


def em01(password: str = "wrong-pass", **kwargs: object) -> ServerConfig:  # noqa: S107
    return ServerConfig(
        name="em01",
        url="https://em01.example.com:9398",
        username="u",
        password=password,
        max_logon_failures=3,
        **kwargs,  # type: ignore[arg-type]
    )


def suspended(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("veeam_em_logon_suspended", {"server": "em01"})


def polls(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("veeam_em_polls_total", {"server": "em01"})


def suspended_exporter(em: Account, server: ServerConfig) -> Exporter:
    exporter = Exporter(clock=lambda: T0, client_factory=em.factory)
    exporter.apply(Config(servers=(server,)))
    for _ in range(5):
        (poller,) = exporter.pollers()
        poller.poll_once()
    assert len(em.attempts) == 3
    assert suspended(exporter.registry) == 1
    return exporter


def test_a_reload_of_an_unchanged_server_ends_the_suspension_for_one_attempt() -> None:
    em = Account("right-pass")
    exporter = suspended_exporter(em, em01())
    (before,) = exporter.pollers()
    exporter.apply(Config(servers=(em01(),)))
    (after,) = exporter.pollers()
    assert after is before  # kept, not restarted
    assert suspended(exporter.registry) == 0
    assert after.logon_suspended_until is None
    # The password did not change: one attempt, refused, and suspended again.
    for _ in range(5):
        after.poll_once()
    assert len(em.attempts) == 4
    assert suspended(exporter.registry) == 1


def test_a_reload_that_restarts_the_poller_ends_the_suspension_and_keeps_the_count() -> None:
    em = Account("right-pass")
    exporter = suspended_exporter(em, em01())
    exporter.apply(Config(servers=(em01(timeout=10.0),)))
    (after,) = exporter.pollers()
    assert suspended(exporter.registry) == 0
    assert polls(exporter.registry) == 3  # counters carry over
    for _ in range(5):
        after.poll_once()
    assert len(em.attempts) == 4
    assert suspended(exporter.registry) == 1


def test_a_reload_with_a_new_password_starts_counting_again() -> None:
    em = Account("right-pass")
    exporter = suspended_exporter(em, em01())
    exporter.apply(Config(servers=(em01(password="still-wrong"),)))
    (after,) = exporter.pollers()
    for _ in range(5):
        after.poll_once()
    assert em.attempts[3:] == ["still-wrong"] * 3
    assert suspended(exporter.registry) == 1
    exporter.apply(Config(servers=(em01(password="right-pass"),)))
    (fixed,) = exporter.pollers()
    assert fixed.poll_once() is True
    assert suspended(exporter.registry) == 0
    assert exporter.registry.get_sample_value("veeam_em_up", {"server": "em01"}) == 1


def test_a_removed_server_takes_its_suspension_gauge_along() -> None:
    em = Account("right-pass")
    exporter = suspended_exporter(em, em01())
    other = replace(em01(), name="em02", password="right-pass")
    exporter.apply(Config(servers=(other,)))
    assert suspended(exporter.registry) is None
    assert exporter.registry.get_sample_value("veeam_em_logon_suspended", {"server": "em02"}) == 0
