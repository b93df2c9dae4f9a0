"""No secret value in an exception, a repr, a str or a log line, for every call that
touches one: the checks run every method, successes and failures, with every logger
at DEBUG and grpc's own stderr captured."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conftest import Fixture
from vaultbridge import AsyncClient, Client, VaultbridgeError

NAMES = ["plain", "jira-api-token", "pem", "binary", "watched", "missing-entry", "not-a-map", "guarded", "unreachable", "bad name!"]


def texts_of(obj: object) -> list[str]:
    """repr and str of an object, and of its exception chain."""
    out = [repr(obj), str(obj)]
    if isinstance(obj, BaseException):
        for linked in (obj.__cause__, obj.__context__):
            if linked is not None:
                out += texts_of(linked)
    return out


def sync_calls(address: str) -> list[object]:
    seen: list[object] = []
    with Client(address) as vb:
        seen.append(vb)
        for name in NAMES:
            for call in (vb.resolve, vb.get, vb.get_bytes):
                try:
                    result = call(name)
                    # The value itself is the point of get(); only its wrappers are checked.
                    if call == vb.resolve:
                        seen.append(result)
                except VaultbridgeError as err:
                    seen.append(err)
        seen.append(vb.resolve_many(NAMES[:-1]))
        seen.append(vb.list_definitions())
        for connection in ("sync-cloud", "async-cloud", "nope"):
            try:
                seen.append(vb.jira_credentials(connection))
            except VaultbridgeError as err:
                seen.append(err)
        seen.append(vb.list_connections())
    return seen


async def async_calls(address: str) -> list[object]:
    seen: list[object] = []
    async with AsyncClient(address) as vb:
        for name in NAMES:
            try:
                seen.append(await vb.resolve(name))
            except VaultbridgeError as err:
                seen.append(err)
        seen.append(await vb.resolve_many(NAMES[:-1]))
        seen.append(await vb.jira_credentials("sync-cloud"))
    return seen


def test_no_value_in_any_exception_repr_or_log(
    address: str, fx: Fixture, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = sync_calls(address) + asyncio.run(async_calls(address))
    assert any(isinstance(item, VaultbridgeError) for item in seen)
    texts = [text for item in seen for text in texts_of(item)]
    # Values inside containers (resolve_many's dict, lists) are printed through the
    # container's repr, which calls each element's.
    captured = capfd.readouterr()
    haystack = "\n".join([*texts, caplog.text, captured.out, captured.err])
    assert "resolved plain" in caplog.text, "the client's debug log was captured"
    for value in fx.secrets():
        assert value not in haystack, f"a value of {len(value)} characters leaked"
    assert fx.binary.hex() not in haystack and repr(fx.binary) not in haystack


def test_redacted_reprs_still_say_what_the_object_is(address: str, fx: Fixture) -> None:
    with Client(address) as vb:
        secret = vb.resolve("plain")
        credentials = vb.jira_credentials("sync-cloud")
    assert repr(secret).startswith("Secret(name='plain', value=[REDACTED], backend='local'")
    assert "token=[REDACTED], authorization=[REDACTED]" in repr(credentials)
    assert f"{secret}" == repr(secret) and f"{credentials}" == repr(credentials)
