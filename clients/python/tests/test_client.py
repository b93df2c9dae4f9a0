"""Every method of the blocking client against the real daemon, over the Unix socket
and over TCP."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Fixture
from vaultbridge import CacheOutcome, Client, DaemonUnreachable, InvalidArgument, NotFound, Secret, WatchEventKind


def test_get_returns_the_text_with_copy_paste_whitespace_trimmed(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        assert vb.get("jira-api-token") == fx.values["jira-api-token"]
        assert vb.get("plain") == fx.values["plain"]


def test_get_bytes_returns_an_untrimmed_value_byte_for_byte(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        pem = vb.get_bytes("pem")
    assert pem == fx.values["pem"].encode()
    assert pem.endswith(b"-----END KEY-----\n")


def test_get_bytes_serves_a_binary_value(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        assert vb.get_bytes("binary") == fx.binary
        assert not vb.resolve("binary").is_text


def test_resolve_reports_backend_fetch_time_cache_and_trimming(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        vb.invalidate("jira-api-token")
        first = vb.resolve("jira-api-token")
        second = vb.resolve("jira-api-token")
    assert isinstance(first, Secret)
    assert first.name == "jira-api-token"
    assert first.text == fx.values["jira-api-token"]
    assert first.value == fx.values["jira-api-token"].encode()
    assert first.backend == "local"
    assert first.version is None, "secrets files have no versions"
    assert first.cache is CacheOutcome.MISS
    assert second.cache is CacheOutcome.HIT
    assert first.trimmed is True
    assert first.stale is False and first.stale_reason is None
    assert first.fetched_at is not None
    assert abs(datetime.now(timezone.utc) - first.fetched_at) < timedelta(minutes=5)
    assert second.fetched_at == first.fetched_at, "a hit serves the value read before"
    assert second.age is not None and timedelta(0) <= second.age < timedelta(minutes=5)


def test_resolve_with_refresh_or_max_age_reads_the_backend_again(address: str) -> None:
    with Client(address) as vb:
        vb.resolve("plain")
        assert vb.resolve("plain").cache is CacheOutcome.HIT
        assert vb.resolve("plain", refresh=True).cache is CacheOutcome.MISS
        assert vb.resolve("plain", max_age=0).cache is CacheOutcome.MISS
        assert vb.resolve("plain", max_age=timedelta(hours=1)).cache is CacheOutcome.HIT
        with pytest.raises(ValueError, match="negative"):
            vb.resolve("plain", max_age=-1)


def test_invalidate_one_or_all_makes_the_next_resolve_read_the_backend(address: str) -> None:
    with Client(address) as vb:
        vb.resolve("plain")
        vb.resolve("pem")
        vb.invalidate("plain")
        assert vb.resolve("plain").cache is CacheOutcome.MISS
        assert vb.resolve("pem").cache is CacheOutcome.HIT
        vb.invalidate()
        assert vb.resolve("plain").cache is CacheOutcome.MISS
        assert vb.resolve("pem").cache is CacheOutcome.MISS


def test_resolve_many_gives_each_name_its_secret_or_its_error(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        results = vb.resolve_many(["plain", "missing-entry", "jira-api-token"])
        refreshed = vb.resolve_many(["plain"], refresh=True)
        aged = vb.resolve_many(["plain"], max_age=3600)
    assert list(results) == ["plain", "missing-entry", "jira-api-token"]
    plain = results["plain"]
    assert isinstance(plain, Secret) and plain.text == fx.values["plain"]
    missing = results["missing-entry"]
    assert isinstance(missing, NotFound) and missing.name == "missing-entry"
    assert "not-there" in missing.message
    token = results["jira-api-token"]
    assert isinstance(token, Secret) and token.trimmed
    refreshed_plain = refreshed["plain"]
    assert isinstance(refreshed_plain, Secret) and refreshed_plain.cache is CacheOutcome.MISS
    aged_plain = aged["plain"]
    assert isinstance(aged_plain, Secret) and aged_plain.cache is CacheOutcome.HIT


def test_resolve_many_refuses_a_batch_over_256_names(address: str) -> None:
    with Client(address) as vb:
        with pytest.raises(InvalidArgument, match="256") as caught:
            vb.resolve_many(["plain"] * 257)
    assert caught.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TypeError):
        Client(address).resolve_many("plain")


def test_list_definitions_describes_every_definition_without_values(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        definitions = {d.name: d for d in vb.list_definitions()}
    token = definitions["jira-api-token"]
    assert (token.backend, token.backend_type, token.secret, token.key) == ("local", "file", "jira", "api_token")
    assert token.description == "Jira token"
    assert token.trim is True
    assert token.ttl == timedelta(minutes=10)
    assert definitions["pem"].trim is False
    assert definitions["plain"].key is None
    assert definitions["binary"].backend_type == "env"
    text = repr(list(definitions.values()))
    for value in fx.secrets():
        assert value not in text


def test_health_reports_serving_and_refuses_an_unknown_service(address: str) -> None:
    with Client(address) as vb:
        assert vb.health() == "SERVING"
        assert vb.health("vaultbridge.v1.Secrets") == "SERVING"
        with pytest.raises(NotFound):
            vb.health("no.such.Service")


def test_watch_streams_the_current_state_then_a_change(address: str, fx: Fixture, tmp_path_factory: pytest.TempPathFactory) -> None:
    new_value = f"watched-{address[-8:]}-{tmp_path_factory.getbasetemp().name}"
    with Client(address) as vb:
        with vb.watch(["watched"]) as stream:
            current = next(stream)
            assert (current.name, current.kind) == ("watched", WatchEventKind.CURRENT)
            assert current.fetched_at is not None
            (fx.dir / "live.yaml").write_text(f'watched: "{new_value}"\n')
            # The read that finds the new value is what sends the event.
            assert vb.get("watched", refresh=True) == new_value
            changed = next(stream)
            assert (changed.name, changed.kind) == ("watched", WatchEventKind.CHANGED)
            stream.cancel()
            assert list(stream) == [], "a cancelled stream ends"


def test_watch_of_an_unknown_definition_raises_not_found(address: str) -> None:
    with Client(address) as vb:
        with pytest.raises(NotFound, match="no-such-definition"):
            next(iter(vb.watch(["no-such-definition"])))


def test_one_client_serves_many_threads(address: str, fx: Fixture) -> None:
    seen: list[str] = []
    lock = threading.Lock()
    with Client(address) as vb:
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for _ in range(20):
                value = vb.get("plain")
                with lock:
                    seen.append(value)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == [fx.values["plain"]] * 160


def test_a_closed_client_refuses_calls(address: str) -> None:
    vb = Client(address)
    with vb:
        assert vb.health() == "SERVING"
    vb.close()
    with pytest.raises(DaemonUnreachable, match="closed"):
        vb.get("plain")


def test_the_address_defaults_to_vaultbridge_addr_then_the_socket(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTBRIDGE_ADDR", fx.tcp)
    with Client() as vb:
        assert vb.address == fx.tcp
        assert vb.get("plain") == fx.values["plain"]
    monkeypatch.delenv("VAULTBRIDGE_ADDR")
    socket_path = fx.uds.removeprefix("unix:")
    monkeypatch.setenv("VAULTBRIDGE_SOCKET", socket_path)
    with Client() as vb:
        assert vb.address == socket_path
        assert vb.get("plain") == fx.values["plain"]
