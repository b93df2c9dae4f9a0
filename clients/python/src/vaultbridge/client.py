"""The blocking client."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

import grpc

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


class Stream(Generic[T]):
    """A server stream (`watch()`, `watch_connections()`): iterate it for events; it
    ends when the daemon shuts down. `cancel()` (or leaving its `with` block) stops it
    from another thread too."""

    def __init__(self, call: Any, convert: Callable[[Any], T], address: str, name: str | None) -> None:
        self._call = call
        self._convert = convert
        self._address = address
        self._name = name
        self._cancelled = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._convert(next(self._call))
        except grpc.RpcError as err:
            if self._cancelled and err.code() == grpc.StatusCode.CANCELLED:
                raise StopIteration from None
            raise errors.from_rpc_error(err, self._address, None, name=self._name) from err

    def cancel(self) -> None:
        """Ends the stream; a blocked iteration then stops."""
        self._cancelled = True
        self._call.cancel()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Client:
    """A connection to a vaultbridge daemon. Thread-safe: share one per process.

    `address` is `unix:/path`, a path starting with `/` or `.`, `host:port`,
    `http://host:port` or `https://host:port`; by default `VAULTBRIDGE_ADDR`, else the
    socket of the example config (`VAULTBRIDGE_SOCKET`, else /tmp/vaultbridge.sock).
    `timeout` bounds each call in seconds. `token` (or `token_file`, re-read on every
    call) is the bearer token a daemon with a `clients` section asks of TCP callers; on
    the socket the kernel tells the daemon who calls. The connection is made on the
    first call; use the client as a context manager, or call `close()`.
    """

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
            self._channel = grpc.secure_channel(
                self._address.target, grpc.ssl_channel_credentials(), options=self._address.options
            )
        else:
            self._channel = grpc.insecure_channel(self._address.target, options=self._address.options)
        stubs = _calls.stubs(self._channel)
        self._secrets, self._jira, self._health = stubs.secrets, stubs.jira, stubs.health
        self._lock = threading.Lock()
        self._closed = False

    @property
    def address(self) -> str:
        """The daemon's address, as given or defaulted."""
        return self._address.text

    def __repr__(self) -> str:
        return f"Client(address={self._address.text!r}, timeout={self._timeout}, {self._token!r})"

    def close(self) -> None:
        """Closes the connection; calls after this fail. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _call(
        self,
        method: Any,
        request: Any,
        name: str | None = None,
        invalid: type[errors.InvalidArgument] = errors.InvalidName,
    ) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=self._token.metadata())
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self._address.text, self._timeout, name=name, invalid=invalid) from err
        except ValueError as err:
            # grpcio raises ValueError for a call on a closed channel.
            raise errors.DaemonUnreachable(f"the client for {self._address.text} is closed", code="CLOSED") from err

    # Secrets

    def resolve(self, name: str, max_age: _calls.MaxAge = None, refresh: bool = False) -> Secret:
        """Resolves one definition: the value with its version, `fetched_at`, cache
        outcome, trimming and staleness.

        `max_age` (seconds or a timedelta): accept only a value fetched within this long,
        never a stale one. `refresh`: read the backend now, whatever is cached.
        """
        request = _calls.resolve_request(name, max_age, refresh)
        secret = secret_from_pb(self._call(self._secrets.Resolve, request, name).secret)
        log.debug("resolved %s: %s", name, secret.cache.name)
        return secret

    def get(self, name: str, max_age: _calls.MaxAge = None, refresh: bool = False) -> str:
        """The definition's value as text; raises `NotText` if it is binary."""
        return self.resolve(name, max_age, refresh).text

    def get_bytes(self, name: str, max_age: _calls.MaxAge = None, refresh: bool = False) -> bytes:
        """The definition's value, byte for byte."""
        return self.resolve(name, max_age, refresh).value

    def resolve_many(
        self, names: Iterable[str], max_age: _calls.MaxAge = None, refresh: bool = False
    ) -> dict[str, Secret | errors.VaultbridgeError]:
        """Resolves up to 256 definitions in one call, concurrently in the daemon.

        Returns, in request order, each name's `Secret`, or the exception it would have
        raised (not raised: one failing name does not fail the others).
        """
        request = _calls.batch_request(names, max_age, refresh)
        response = self._call(self._secrets.ResolveBatch, request, invalid=errors.InvalidArgument)
        return _calls.batch_results(response)

    def list_definitions(self) -> list[Definition]:
        """The configured definitions (never a value)."""
        response = self._call(self._secrets.ListDefinitions, secrets_pb2.ListDefinitionsRequest())
        return [definition_from_pb(d) for d in response.definitions]

    def invalidate(self, name: str | None = None) -> None:
        """Drops the cached value of `name`, or of every definition when `name` is None,
        so that the next resolve reads the backend."""
        self._call(self._secrets.Invalidate, _calls.invalidate_request(name), name)

    def watch(self, names: Iterable[str]) -> Stream[WatchEvent]:
        """Streams each definition's state when the watch begins, then a `CHANGED`
        event whenever a backend read finds a new value or version. Never the value."""
        names = list(names)
        call = self._secrets.Watch(secrets_pb2.WatchRequest(names=names), metadata=self._token.metadata())
        return Stream(call, watch_event_from_pb, self._address.text, names[0] if len(names) == 1 else None)

    def health(self, service: str = "") -> str:
        """The daemon's health status: `SERVING`, `NOT_SERVING` (shutting down),
        `SERVICE_UNKNOWN` or `UNKNOWN`. `service` may name `vaultbridge.v1.Secrets`."""
        return _calls.health_status(self._call(self._health, _calls.HEALTH_REQUEST(value=service)))

    # Jira

    def jira_credentials(self, connection: str) -> JiraCredentials:
        """Ready-to-use credentials for a Jira connection, with the `authorization`
        header value to send."""
        request = jira_pb2.GetCredentialsRequest(connection=connection)
        return credentials_from_pb(self._call(self._jira.GetCredentials, request, connection))

    def list_connections(self) -> list[JiraConnection]:
        """The configured Jira connections and their last known state (never a token)."""
        response = self._call(self._jira.ListConnections, jira_pb2.ListConnectionsRequest())
        return [connection_from_pb(c) for c in response.connections]

    def verify(self, connection: str) -> ConnectionState:
        """Checks the connection's credentials against Jira and returns its new state."""
        request = jira_pb2.VerifyConnectionRequest(connection=connection)
        return state_from_pb(self._call(self._jira.VerifyConnection, request, connection).state)

    def report_auth_failure(self, connection: str) -> AuthFailureReport:
        """Tells the daemon Jira answered 401. If the vault now holds a rotated token,
        the report's `credentials` are the new, verified ones: retry once with them."""
        request = jira_pb2.ReportAuthFailureRequest(connection=connection)
        return report_from_pb(self._call(self._jira.ReportAuthFailure, request, connection))

    def watch_connections(self) -> Stream[ConnectionEvent]:
        """Streams every connection's state, then each change as it happens."""
        call = self._jira.WatchConnections(jira_pb2.WatchConnectionsRequest(), metadata=self._token.metadata())
        return Stream(
            call,
            connection_event_from_pb,
            self._address.text,
            None,
        )
