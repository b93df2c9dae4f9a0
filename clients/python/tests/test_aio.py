"""Every method of the asyncio client against the real daemon, over both transports.
(Each test runs its own event loop with asyncio.run; no plugin needed.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from conftest import Fixture
from vaultbridge import AsyncClient, CacheOutcome, DaemonUnreachable, InvalidArgument, NotFound, Secret, WatchEventKind


def test_get_get_bytes_and_resolve(address: str, fx: Fixture) -> None:
    async def body() -> None:
        async with AsyncClient(address) as vb:
            assert await vb.get("jira-api-token") == fx.values["jira-api-token"]
            assert await vb.get_bytes("pem") == fx.values["pem"].encode()
            assert await vb.get_bytes("binary") == fx.binary
            await vb.invalidate("plain")
            first = await vb.resolve("plain")
            assert (first.name, first.backend, first.cache) == ("plain", "local", CacheOutcome.MISS)
            assert first.fetched_at is not None and not first.trimmed and not first.stale
            assert (await vb.resolve("plain")).cache is CacheOutcome.HIT
            assert (await vb.resolve("plain", refresh=True)).cache is CacheOutcome.MISS
            assert (await vb.resolve("plain", max_age=timedelta(0))).cache is CacheOutcome.MISS

    asyncio.run(body())


def test_concurrent_tasks_share_one_client(address: str, fx: Fixture) -> None:
    async def body() -> list[str]:
        async with AsyncClient(address) as vb:
            return await asyncio.gather(*(vb.get("plain") for _ in range(50)))

    assert asyncio.run(body()) == [fx.values["plain"]] * 50


def test_resolve_many_invalidate_and_list_definitions(address: str, fx: Fixture) -> None:
    async def body() -> None:
        async with AsyncClient(address) as vb:
            results = await vb.resolve_many(["plain", "missing-entry"])
            plain = results["plain"]
            assert isinstance(plain, Secret) and plain.text == fx.values["plain"]
            assert isinstance(results["missing-entry"], NotFound)
            refreshed = (await vb.resolve_many(["pem"], refresh=True))["pem"]
            assert isinstance(refreshed, Secret) and refreshed.cache is CacheOutcome.MISS
            with pytest.raises(InvalidArgument):
                await vb.resolve_many(["plain"] * 257)
            await vb.invalidate()
            assert (await vb.resolve("pem")).cache is CacheOutcome.MISS
            names = {d.name for d in await vb.list_definitions()}
            assert {"plain", "pem", "jira-api-token", "binary"} <= names

    asyncio.run(body())


def test_health(address: str) -> None:
    async def body() -> None:
        async with AsyncClient(address) as vb:
            assert await vb.health() == "SERVING"
            with pytest.raises(NotFound):
                await vb.health("no.such.Service")

    asyncio.run(body())


def test_watch_streams_the_current_state_then_a_change(address: str, fx: Fixture) -> None:
    new_value = f"async-watched-{address[-6:]}"

    async def body() -> None:
        async with AsyncClient(address) as vb:
            async with vb.watch(["watched"]) as stream:
                current = await stream.__anext__()
                assert (current.name, current.kind) == ("watched", WatchEventKind.CURRENT)
                (fx.dir / "live.yaml").write_text(f'watched: "{new_value}"\n')
                assert await vb.get("watched", refresh=True) == new_value
                changed = await stream.__anext__()
                assert (changed.name, changed.kind) == ("watched", WatchEventKind.CHANGED)
                stream.cancel()
                assert [event async for event in stream] == []

    asyncio.run(body())


def test_a_closed_client_refuses_calls(address: str) -> None:
    async def body() -> None:
        vb = AsyncClient(address)
        assert await vb.health() == "SERVING"
        await vb.close()
        await vb.close()
        with pytest.raises(DaemonUnreachable):
            await vb.get("plain")

    asyncio.run(body())
