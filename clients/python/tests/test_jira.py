"""The Jira methods against the real daemon and the fake Jira the Rust side runs. The
fake accepts only the rotated token; the vault (a secrets file) starts with the old one,
so each scenario walks a connection from UNKNOWN through NEEDS_REAUTHORIZATION to
CONNECTED after the rotation. The sync scenario uses the socket, the async one TCP,
each on its own connection."""

from __future__ import annotations

import asyncio
import base64

from conftest import Fixture
from vaultbridge import AsyncClient, Client, ConnectionStatus


def basic(email: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()


def rotate(fx: Fixture, file: str) -> None:
    (fx.dir / file).write_text(f'token: "{fx.jira_rotated_token}"\n')


def test_the_jira_flow_with_the_blocking_client(fx: Fixture) -> None:
    connection = "sync-cloud"
    with Client(fx.uds) as vb:
        names = {c.name: c for c in vb.list_connections()}
        assert names[connection].token_definition == "jira-sync-token"
        assert names[connection].deployment == "cloud"
        assert names[connection].state.status is ConnectionStatus.UNKNOWN

        credentials = vb.jira_credentials(connection)
        assert credentials.base_url == fx.jira_url
        assert (credentials.scheme, credentials.username) == ("basic", fx.jira_email)
        assert credentials.token == fx.jira_old_token
        assert credentials.authorization == basic(fx.jira_email, fx.jira_old_token)
        assert credentials.headers()["Authorization"] == credentials.authorization
        assert credentials.project == "PIPE"

        with vb.watch_connections() as events:
            initial: dict[str, ConnectionStatus] = {}
            while len(initial) < len(names):
                event = next(events)
                initial[event.connection] = event.state.status
            assert initial[connection] is ConnectionStatus.UNKNOWN

            refused = vb.verify(connection)
            assert refused.status is ConnectionStatus.NEEDS_REAUTHORIZATION, refused.message
            change = next(events)
            assert (change.connection, change.state.status) == (connection, ConnectionStatus.NEEDS_REAUTHORIZATION)

            same = vb.report_auth_failure(connection)
            assert not same.token_changed and same.credentials is None
            assert same.state.status is ConnectionStatus.NEEDS_REAUTHORIZATION
            assert "same token" in same.state.message

            rotate(fx, "jira-sync.yaml")
            rotated = vb.report_auth_failure(connection)
            assert rotated.token_changed
            assert rotated.credentials is not None
            assert rotated.credentials.token == fx.jira_rotated_token
            assert rotated.credentials.authorization == basic(fx.jira_email, fx.jira_rotated_token)
            assert rotated.state.status is ConnectionStatus.CONNECTED
            assert rotated.state.display_name == "Dev Person"
            while (change := next(events)).state.status is not ConnectionStatus.CONNECTED:
                assert change.connection == connection
            assert change.connection == connection

        verified = vb.verify(connection)
        assert verified.status is ConnectionStatus.CONNECTED
        assert verified.last_verified is not None
        assert verified.project_keys


def test_the_jira_flow_with_the_async_client(fx: Fixture) -> None:
    connection = "async-cloud"

    async def body() -> None:
        async with AsyncClient(fx.tcp) as vb:
            names = {c.name for c in await vb.list_connections()}
            assert connection in names
            credentials = await vb.jira_credentials(connection)
            assert credentials.authorization == basic(fx.jira_email, fx.jira_old_token)

            async with vb.watch_connections() as events:
                initial: set[str] = set()
                while len(initial) < len(names):
                    initial.add((await events.__anext__()).connection)
                refused = await vb.verify(connection)
                assert refused.status is ConnectionStatus.NEEDS_REAUTHORIZATION
                change = await events.__anext__()
                assert (change.connection, change.state.status) == (connection, ConnectionStatus.NEEDS_REAUTHORIZATION)

            same = await vb.report_auth_failure(connection)
            assert not same.token_changed and same.credentials is None
            rotate(fx, "jira-async.yaml")
            rotated = await vb.report_auth_failure(connection)
            assert rotated.token_changed and rotated.credentials is not None
            assert rotated.credentials.token == fx.jira_rotated_token
            assert rotated.state.status is ConnectionStatus.CONNECTED
            assert (await vb.verify(connection)).status is ConnectionStatus.CONNECTED

    asyncio.run(body())
