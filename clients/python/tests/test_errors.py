"""Every error class, from the real daemon, through both clients and both transports."""

from __future__ import annotations

import asyncio

import pytest

from conftest import Fixture
from vaultbridge import (
    AsyncClient,
    Client,
    DaemonUnreachable,
    FailedPrecondition,
    InvalidArgument,
    InvalidName,
    NotFound,
    NotText,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    VaultbridgeError,
)

# (definition, class, code, words the daemon's message must hold)
CASES: list[tuple[str, type[VaultbridgeError], str, str]] = [
    ("no-such-definition", NotFound, "NOT_FOUND", "no-such-definition"),
    ("missing-entry", NotFound, "NOT_FOUND", "not-there"),
    ("missing-key", NotFound, "NOT_FOUND", "api_tokn"),
    ("bad name!", InvalidName, "INVALID_ARGUMENT", "name"),
    ("not-a-map", FailedPrecondition, "FAILED_PRECONDITION", "plain"),
    ("guarded", PermissionDenied, "PERMISSION_DENIED", "guarded"),
    ("unreachable", Unavailable, "UNAVAILABLE", "could not be read"),
]


def check(err: VaultbridgeError, cls: type[VaultbridgeError], code: str, words: str, name: str) -> None:
    assert type(err) is cls, repr(err)
    assert err.code == code
    assert err.name == name
    assert words in err.message, err.message
    assert str(err) == err.message


@pytest.mark.parametrize(("name", "cls", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_each_status_raises_its_class_with_the_daemon_s_message(
    address: str, name: str, cls: type[VaultbridgeError], code: str, words: str
) -> None:
    with Client(address) as vb:
        with pytest.raises(cls) as caught:
            vb.get(name)
    check(caught.value, cls, code, words, name)


@pytest.mark.parametrize(("name", "cls", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_each_status_raises_its_class_from_the_async_client(
    address: str, name: str, cls: type[VaultbridgeError], code: str, words: str
) -> None:
    async def body() -> VaultbridgeError:
        async with AsyncClient(address) as vb:
            try:
                await vb.get(name)
            except VaultbridgeError as err:
                return err
        raise AssertionError(f"{name} resolved")

    check(asyncio.run(body()), cls, code, words, name)


def test_classes_form_a_hierarchy_callers_can_catch_broadly() -> None:
    assert issubclass(DaemonUnreachable, Unavailable)
    assert issubclass(InvalidName, InvalidArgument) and issubclass(InvalidName, ValueError)
    assert issubclass(NotText, ValueError)
    for cls in (NotFound, PermissionDenied, Unauthenticated, FailedPrecondition, Unavailable, InvalidName, DaemonUnreachable, NotText):
        assert issubclass(cls, VaultbridgeError)


def test_a_binary_value_asked_for_as_text_raises_not_text(address: str) -> None:
    with Client(address) as vb:
        with pytest.raises(NotText, match="get_bytes"):
            vb.get("binary")


def test_an_unknown_jira_connection_raises_not_found(address: str) -> None:
    with Client(address) as vb:
        with pytest.raises(NotFound, match="no-such-connection") as caught:
            vb.jira_credentials("no-such-connection")
    assert caught.value.name == "no-such-connection"


def test_a_missing_socket_raises_daemon_unreachable(fx: Fixture) -> None:
    address = f"unix:{fx.dir / 'nobody-listens.sock'}"
    with Client(address, timeout=10) as vb:
        with pytest.raises(DaemonUnreachable, match="nobody-listens.sock") as caught:
            vb.get("plain")
    assert "vaultbridge serve" in caught.value.message

    async def body() -> None:
        async with AsyncClient(address, timeout=10) as vb:
            with pytest.raises(DaemonUnreachable):
                await vb.get("plain")

    asyncio.run(body())


def test_a_refused_tcp_port_raises_daemon_unreachable(refusing_address: str) -> None:
    with Client(refusing_address, timeout=10) as vb:
        with pytest.raises(DaemonUnreachable, match=refusing_address):
            vb.health()

    async def body() -> None:
        async with AsyncClient(f"http://{refusing_address}", timeout=10) as vb:
            with pytest.raises(DaemonUnreachable):
                await vb.health()

    asyncio.run(body())
