"""The asyncio client, on `grpc.aio`. Create it inside the event loop that uses it."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Generic, Iterable, TypeVar

import grpc
import grpc.aio

from vaultbridge import _calls, errors
from vaultbridge._address import Address
from vaultbridge.models import (
    AuthFailureReport,
    ConnectionEvent,
    ConnectionState,
    Definition,
    JiraConnection,
    JiraCredentials,
    Secret,
    WatchEvent,
    connection_from_pb,
    connection_event_from_pb,
    credentials_from_pb,
    definition_from_pb,
    report_from_pb,
    secret_from_pb,
    state_from_pb,
    watch_event_from_pb,
)
from vaultbridge.v1 import jira_pb2, secrets_pb2

log = logging.getLogger("vaultbridge")

T = TypeVar("T")


class AsyncStream(Generic[T]):
    """A server stream: `async for` over it; it ends when the daemon shuts down.
    `cancel()` (or leaving its `with` block) stops it."""

    def __init__(self, call: Any, convert: Callable[[Any], T], address: str, name: str | None) -> None:
        self._call = call
        self._convert = convert
        self._address = address
        self._name = name
        self._cancelled = False
        self._iterator: AsyncIterator[Any] | None = None

    def __aiter__(self) -> AsyncStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._iterator is None:
            self._iterator = self._call.__aiter__()
        try:
            return self._convert(await self._iterator.__anext__())
        except grpc.RpcError as err:
            if self._cancelled or err.code() == grpc.StatusCode.CANCELLED:
                raise StopAsyncIteration from None
            raise errors.from_rpc_error(err, self._address, None, name=self._name) from err
        except asyncio.CancelledError:
            # grpc.aio ends a cancelled stream's iteration with CancelledError.
            if self._cancelled:
                raise StopAsyncIteration from None
            raise

    def cancel(self) -> None:
        """Ends the stream."""
        self._cancelled = True
        self._call.cancel()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class AsyncClient:
    """The asyncio variant of `Client`, with the same methods as coroutines and the
    same address forms, default and timeout. Use it with `async with`, or await
    `close()`. Safe to share between tasks of one event loop."""

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = _calls.DEFAULT_TIMEOUT,
        token: str | None = None,
        token_file: str | None = None,
    ) -> None:
        self._address = Address.resolve(address)
        self._timeout = timeout
        self._token = _calls.BearerToken(token, token_file)
        if self._address.tls:
            self._channel = grpc.aio.secure_channel(
                self._address.target, grpc.ssl_channel_credentials(), options=self._address.options
            )
        else:
            self._channel = grpc.aio.insecure_channel(self._address.target, options=self._address.options)
        stubs = _calls.stubs(self._channel)
        self._secrets, self._jira, self._health = stubs.secrets, stubs.jira, stubs.health

    @property
    def address(self) -> str:
        """The daemon's address, as given or defaulted."""
        return self._address.text

    def __repr__(self) -> str:
        return f"AsyncClient(address={self._address.text!r}, timeout={self._timeout}, {self._token!r})"

    async def close(self) -> None:
        """Closes the connection, cancelling open streams. Idempotent."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(
        self,
        method: Any,
        request: Any,
        name: str | None = None,
        invalid: type[errors.InvalidArgument] = errors.InvalidName,
    ) -> Any:
        try:
            return await method(request, timeout=self._timeout, metadata=self._token.metadata())
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self._address.text, self._timeout, name=name, invalid=invalid) from err
        except grpc.aio.UsageError as err:
            raise errors.DaemonUnreachable(f"the client for {self._address.text} is closed", code="CLOSED") from err

    # Secrets

    async def resolve(self, name: str, max_age: _calls.MaxAge = None, refresh: bool = False) -> Secret:
        """See `Client.resolve`."""
        request = _calls.resolve_request(name, max_age, refresh)
        secret = secret_from_pb((await self._call(self._secrets.Resolve, request, name)).secret)
        log.debug("resolved %s: %s", name, secret.cache.name)
        return secret

    async def get(self, name: str, max_age: _calls.MaxAge = None, refresh: bool = False) -> str:
        """See `Client.get`."""
        return (await self.resolve(name, max_age, refresh)).text

    async def get_bytes(self, name: str, max_age: _calls.MaxAge = None, refresh: bool = False) -> bytes:
        """See `Client.get_bytes`."""
        return (await self.resolve(name, max_age, refresh)).value

    async def resolve_many(
        self, names: Iterable[str], max_age: _calls.MaxAge = None, refresh: bool = False
    ) -> dict[str, Secret | errors.VaultbridgeError]:
        """See `Client.resolve_many`."""
        request = _calls.batch_request(names, max_age, refresh)
        response = await self._call(self._secrets.ResolveBatch, request, invalid=errors.InvalidArgument)
        return _calls.batch_results(response)

    async def list_definitions(self) -> list[Definition]:
        """See `Client.list_definitions`."""
        response = await self._call(self._secrets.ListDefinitions, secrets_pb2.ListDefinitionsRequest())
        return [definition_from_pb(d) for d in response.definitions]

    async def invalidate(self, name: str | None = None) -> None:
        """See `Client.invalidate`."""
        await self._call(self._secrets.Invalidate, _calls.invalidate_request(name), name)

    def watch(self, names: Iterable[str]) -> AsyncStream[WatchEvent]:
        """See `Client.watch`; iterate with `async for`."""
        names = list(names)
        call = self._secrets.Watch(secrets_pb2.WatchRequest(names=names), metadata=self._token.metadata())
        return AsyncStream(call, watch_event_from_pb, self._address.text, names[0] if len(names) == 1 else None)

    async def health(self, service: str = "") -> str:
        """See `Client.health`."""
        return _calls.health_status(await self._call(self._health, _calls.HEALTH_REQUEST(value=service)))

    # Jira

    async def jira_credentials(self, connection: str) -> JiraCredentials:
        """See `Client.jira_credentials`."""
        request = jira_pb2.GetCredentialsRequest(connection=connection)
        return credentials_from_pb(await self._call(self._jira.GetCredentials, request, connection))

    async def list_connections(self) -> list[JiraConnection]:
        """See `Client.list_connections`."""
        response = await self._call(self._jira.ListConnections, jira_pb2.ListConnectionsRequest())
        return [connection_from_pb(c) for c in response.connections]

    async def verify(self, connection: str) -> ConnectionState:
        """See `Client.verify`."""
        request = jira_pb2.VerifyConnectionRequest(connection=connection)
        return state_from_pb((await self._call(self._jira.VerifyConnection, request, connection)).state)

    async def report_auth_failure(self, connection: str) -> AuthFailureReport:
        """See `Client.report_auth_failure`."""
        request = jira_pb2.ReportAuthFailureRequest(connection=connection)
        return report_from_pb(await self._call(self._jira.ReportAuthFailure, request, connection))

    def watch_connections(self) -> AsyncStream[ConnectionEvent]:
        """See `Client.watch_connections`; iterate with `async for`."""
        call = self._jira.WatchConnections(jira_pb2.WatchConnectionsRequest(), metadata=self._token.metadata())
        return AsyncStream(
            call,
            connection_event_from_pb,
            self._address.text,
            None,
        )
