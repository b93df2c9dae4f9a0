"""Requests and answers shared by the blocking and the asyncio client."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

from google.protobuf.duration_pb2 import Duration
from google.protobuf.wrappers_pb2 import Int32Value, StringValue

from vaultbridge import errors
from vaultbridge.models import Secret, secret_from_pb
from vaultbridge.v1 import jira_pb2_grpc, secrets_pb2, secrets_pb2_grpc

#: Seconds a call may take unless the client is given another `timeout`. A cold
#: resolve waits for the backend (cloud SDK retries included), so this is generous.
DEFAULT_TIMEOUT = 30.0

#: The most names the daemon takes in one batch.
MAX_BATCH = 256

# grpc.health.v1 without another dependency: HealthCheckRequest is `string service = 1`
# and HealthCheckResponse `ServingStatus status = 1` (an enum, varint-encoded like an
# int32), so the wrappers are the same messages on the wire.
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_REQUEST = StringValue
HEALTH_RESPONSE = Int32Value
HEALTH_STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

MaxAge = float | timedelta | None


def duration(max_age: MaxAge) -> Duration | None:
    """`max_age` (seconds or a timedelta) as a protobuf Duration, checked here so that a
    negative one fails before a call."""
    if max_age is None:
        return None
    seconds = max_age.total_seconds() if isinstance(max_age, timedelta) else float(max_age)
    if seconds < 0:
        raise ValueError(f"max_age cannot be negative, got {seconds}s")
    message = Duration()
    message.FromTimedelta(timedelta(seconds=seconds))
    return message


def resolve_request(name: str, max_age: MaxAge, refresh: bool) -> secrets_pb2.ResolveRequest:
    request = secrets_pb2.ResolveRequest(name=name, refresh=refresh)
    age = duration(max_age)
    if age is not None:
        request.max_age.CopyFrom(age)
    return request


def batch_request(names: Iterable[str], max_age: MaxAge, refresh: bool) -> secrets_pb2.ResolveBatchRequest:
    if isinstance(names, (str, bytes)):
        raise TypeError("resolve_many() takes a list of names, not one name")
    names = list(names)
    if max_age is None and not refresh:
        return secrets_pb2.ResolveBatchRequest(names=names)
    return secrets_pb2.ResolveBatchRequest(items=[resolve_request(name, max_age, refresh) for name in names])


def batch_results(response: secrets_pb2.ResolveBatchResponse) -> dict[str, Secret | errors.VaultbridgeError]:
    results: dict[str, Secret | errors.VaultbridgeError] = {}
    for result in response.results:
        if result.HasField("secret"):
            results[result.name] = secret_from_pb(result.secret)
        else:
            results[result.name] = errors.from_number(result.error.code, result.error.message, name=result.name)
    return results


def invalidate_request(name: str | None) -> secrets_pb2.InvalidateRequest:
    if name is None:
        return secrets_pb2.InvalidateRequest(all=True)
    return secrets_pb2.InvalidateRequest(name=name)


def health_status(response: Int32Value) -> str:
    return HEALTH_STATUSES.get(response.value, "UNKNOWN")


@dataclass(frozen=True)
class Stubs:
    """The callables of one channel, sync or asyncio alike."""

    secrets: Any
    jira: Any
    health: Any


def stubs(channel: Any) -> Stubs:
    return Stubs(
        secrets=secrets_pb2_grpc.SecretsStub(channel),
        jira=jira_pb2_grpc.JiraStub(channel),
        health=channel.unary_unary(
            HEALTH_CHECK,
            request_serializer=HEALTH_REQUEST.SerializeToString,
            response_deserializer=HEALTH_RESPONSE.FromString,
        ),
    )


class BearerToken:
    """The `authorization` metadata for a caller known by a token: given, or read from
    a file on every call so that a rotated file is picked up without a restart. Its
    repr never shows the token."""

    def __init__(self, token: str | None, token_file: str | None) -> None:
        if token is not None and token_file is not None:
            raise ValueError("give `token` or `token_file`, not both")
        if token is not None and not token.strip():
            raise ValueError("`token` is empty")
        self._token = token.strip() if token is not None else None
        self._file = pathlib.Path(token_file) if token_file is not None else None

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        if self._file is not None:
            try:
                token = self._file.read_text().strip()
            except OSError as err:
                raise errors.Unauthenticated(
                    f"cannot read the token file {self._file}: {err.strerror}", code="TOKEN_FILE"
                ) from None
            if not token:
                raise errors.Unauthenticated(f"the token file {self._file} is empty", code="TOKEN_FILE")
        elif self._token is not None:
            token = self._token
        else:
            return None
        return (("authorization", f"Bearer {token}"),)

    def __repr__(self) -> str:
        if self._file is not None:
            return f"token_file={str(self._file)!r}"
        return "token=[REDACTED]" if self._token is not None else "token=None"
