"""Against a daemon with access rules (a `clients` section): the bearer token over TCP,
`Unauthenticated` without a known one, `PermissionDenied` outside the caller's grants."""

from __future__ import annotations

import asyncio

import pytest

from conftest import FIXTURE, Fixture
from vaultbridge import AsyncClient, Client, PermissionDenied, Unauthenticated, VaultbridgeError

ACCESS = FIXTURE.access


def test_a_tcp_call_without_a_token_is_unauthenticated() -> None:
    with Client(ACCESS["tcp"]) as vb:
        assert vb.health() == "SERVING", "probes need no credentials"
        with pytest.raises(Unauthenticated) as caught:
            vb.get("plain")
    assert caught.value.code == "UNAUTHENTICATED"


def test_an_unknown_token_is_unauthenticated_and_never_quoted() -> None:
    with Client(ACCESS["tcp"], token="not-a-known-token") as vb:
        with pytest.raises(Unauthenticated) as caught:
            vb.get("plain")
    assert "not-a-known-token" not in repr(caught.value) + str(caught.value)


def test_the_token_reads_what_its_client_may_read_and_nothing_else() -> None:
    with Client(ACCESS["tcp"], token=ACCESS["token"]) as vb:
        assert vb.get("plain") == ACCESS["plain"]
        assert [d.name for d in vb.list_definitions()] == ["plain"]
        with pytest.raises(PermissionDenied, match="pem"):
            vb.get("pem")
        assert ACCESS["token"] not in repr(vb)
        assert "token=[REDACTED]" in repr(vb)


def test_a_token_file_is_read_for_each_call(fx: Fixture) -> None:
    with Client(ACCESS["tcp"], token_file=ACCESS["token_file"]) as vb:
        assert vb.get("plain") == ACCESS["plain"]
    with Client(ACCESS["tcp"], token_file=str(fx.dir / "no-such.token")) as vb:
        with pytest.raises(Unauthenticated, match="no-such.token"):
            vb.get("plain")
    with pytest.raises(ValueError):
        Client(ACCESS["tcp"], token="a", token_file=ACCESS["token_file"])


def test_the_async_client_sends_the_token_too() -> None:
    async def body() -> None:
        async with AsyncClient(ACCESS["tcp"], token=ACCESS["token"]) as vb:
            assert await vb.get("plain") == ACCESS["plain"]
            with pytest.raises(PermissionDenied):
                await vb.get("pem")
        async with AsyncClient(ACCESS["tcp"]) as vb:
            with pytest.raises(Unauthenticated):
                await vb.get("plain")

    asyncio.run(body())


def test_a_socket_caller_no_client_entry_matches_is_denied() -> None:
    with Client(ACCESS["uds"]) as vb:
        with pytest.raises(PermissionDenied) as caught:
            vb.get("plain")
    assert isinstance(caught.value, VaultbridgeError)
