"""The exceptions the client raises, one per gRPC status the daemon answers with.

Each carries the daemon's message, which names the definition and the backend but never
holds a secret value; the client adds none either.
"""

from __future__ import annotations

import grpc


class VaultbridgeError(Exception):
    """Base of every error the client raises for a call.

    `message` is the daemon's explanation, `code` the gRPC status name (e.g.
    `"NOT_FOUND"`), `name` the definition or connection the call was about, if any.
    """

    def __init__(self, message: str, *, code: str = "UNKNOWN", name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, name={self.name!r}, message={self.message!r})"


class NotFound(VaultbridgeError):
    """Unknown definition or connection, or the secret or key is missing in the backend."""


class PermissionDenied(VaultbridgeError):
    """The daemon's access rules do not let this caller read the definition, or the
    daemon's own identity may not read the secret in its backend."""


class Unauthenticated(VaultbridgeError):
    """Over TCP, the daemon requires a bearer token (its `clients` section) and the
    call sent none, or one no client has. Pass `token=` or `token_file=`."""


class FailedPrecondition(VaultbridgeError):
    """The secret cannot be served as defined (e.g. a key asked of a non-key/value
    secret, a secrets file that is missing or invalid)."""


class InvalidArgument(VaultbridgeError, ValueError):
    """The daemon refused the request itself (e.g. a batch over 256 names)."""


class InvalidName(InvalidArgument):
    """A definition name outside 1 to 256 bytes of ASCII letters, digits, `-`, `_`,
    `.` and `/`."""


class Unavailable(VaultbridgeError):
    """Temporary: the backend cannot be reached and no value may be served stale, or the
    call timed out. Retry later."""


class DaemonUnreachable(Unavailable):
    """The daemon itself could not be reached at the address (not running, wrong
    socket path or port, connection lost)."""


class NotText(VaultbridgeError, ValueError):
    """`get()` on a value that is not valid UTF-8; use `get_bytes()`."""


_BY_CODE: dict[grpc.StatusCode, type[VaultbridgeError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidName,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}

_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

# grpc core's own words when no connection could be made or it was lost; a status the
# daemon sent has its own message. (grpcio exposes no flag telling the two apart.)
_TRANSPORT_MARKERS = (
    "failed to connect to all addresses",
    "Socket closed",
    "Connection reset",
    "Broken pipe",
    "connections to all backends failing",
)


def from_code(
    code: grpc.StatusCode,
    message: str,
    *,
    name: str | None = None,
    invalid: type[InvalidArgument] = InvalidName,
) -> VaultbridgeError:
    """The exception for a status; `invalid` is the class INVALID_ARGUMENT maps to."""
    cls = invalid if code == grpc.StatusCode.INVALID_ARGUMENT else _BY_CODE.get(code, VaultbridgeError)
    return cls(message, code=code.name, name=name)


def from_number(number: int, message: str, *, name: str | None = None) -> VaultbridgeError:
    """The exception for a batch item's numeric status code."""
    code = _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)
    return from_code(code, message, name=name)


def from_rpc_error(
    err: grpc.RpcError,
    address: str,
    timeout: float | None,
    *,
    name: str | None = None,
    invalid: type[InvalidArgument] = InvalidName,
) -> VaultbridgeError:
    """The exception for a failed call (sync or asyncio)."""
    code: grpc.StatusCode = err.code()
    details: str = err.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and any(m in details for m in _TRANSPORT_MARKERS):
        return DaemonUnreachable(
            f"cannot reach the vaultbridge daemon at {address}: {details}; is `vaultbridge serve` running?",
            code=code.name,
            name=name,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable(
            f"the vaultbridge daemon at {address} did not answer within {timeout}s",
            code=code.name,
            name=name,
        )
    return from_code(code, details, name=name, invalid=invalid)
