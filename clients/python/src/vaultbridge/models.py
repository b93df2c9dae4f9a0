"""What the client returns: plain, immutable objects decoupled from the generated
messages. Objects holding secret material print it as `[REDACTED]`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Mapping

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from vaultbridge.errors import NotText
from vaultbridge.v1 import jira_pb2, secrets_pb2

REDACTED = "[REDACTED]"


class CacheOutcome(enum.Enum):
    """How the daemon served a value."""

    #: From the cache, without a backend call.
    HIT = "HIT"
    #: The request waited for a backend read.
    MISS = "MISS"
    #: The backend failed for a temporary reason; the last good value was served.
    STALE = "STALE"
    #: A value this client version does not know.
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Secret:
    """A resolved secret. `value` is never part of `repr()` or `str()`."""

    name: str
    value: bytes = field(repr=False)
    #: The backend instance that served it (for a definition with `sources`, the one
    #: that answered; see `source`).
    backend: str
    #: The backend's version id, when the backend has versions.
    version: str | None
    #: When the daemon read the value from the backend.
    fetched_at: datetime | None
    cache: CacheOutcome
    #: True when trimming removed whitespace around the stored value.
    trimmed: bool
    #: True when this is the last good value, served while the backend fails.
    stale: bool
    #: How long ago the value was read from the backend.
    age: timedelta | None
    #: Why the backend could not be read, when stale (never secret material).
    stale_reason: str | None
    #: Backend facts such as content type or version stages (never secret material).
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Which of the definition's sources served it: 0 for the first (and for a
    #: definition with one backend); above 0, the sources before it were passed over.
    source: int = 0
    _text: str | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The value as text; raises `NotText` when it is not valid UTF-8."""
        if self._text is None:
            raise NotText(
                f"definition `{self.name}` holds a binary value; use get_bytes()",
                code="NOT_TEXT",
                name=self.name,
            )
        return self._text

    @property
    def is_text(self) -> bool:
        """True when the value is valid UTF-8."""
        return self._text is not None

    def __repr__(self) -> str:
        return (
            f"Secret(name={self.name!r}, value={REDACTED}, backend={self.backend!r}, source={self.source}, "
            f"version={self.version!r}, fetched_at={self.fetched_at!r}, cache={self.cache.name}, "
            f"trimmed={self.trimmed}, stale={self.stale}, age={self.age!r}, stale_reason={self.stale_reason!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class Definition:
    """A configured definition, as `list_definitions()` returns it. Never a value."""

    name: str
    backend: str
    backend_type: str
    description: str
    #: True: whitespace is trimmed; False: served byte for byte; None: not said.
    trim: bool | None
    #: The secret's id in the backend, and the key picked from it.
    secret: str
    key: str | None
    ttl: timedelta


class WatchEventKind(enum.Enum):
    """What a watch event reports."""

    CURRENT = "CURRENT"
    CHANGED = "CHANGED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class WatchEvent:
    """A definition's state when a watch begins, or a change; never the value."""

    name: str
    kind: WatchEventKind
    version: str | None
    fetched_at: datetime | None
    #: For ERROR: why the definition could not be read.
    message: str


class ConnectionStatus(enum.Enum):
    """A Jira connection's last known status."""

    UNKNOWN = "UNKNOWN"
    CONNECTED = "CONNECTED"
    NEEDS_REAUTHORIZATION = "NEEDS_REAUTHORIZATION"
    FAILED = "FAILED"
    UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True)
class ConnectionState:
    """What the daemon knows about a Jira connection. Never a token."""

    status: ConnectionStatus
    #: What happened and what to do next, in plain words.
    message: str
    last_verified: datetime | None
    display_name: str
    account_id: str
    project_keys: tuple[str, ...]
    consecutive_failures: int


@dataclass(frozen=True)
class ConnectionEvent:
    """One connection's state, from `watch_connections()`."""

    connection: str
    state: ConnectionState


@dataclass(frozen=True)
class JiraConnection:
    """A configured Jira connection, from `list_connections()`. Never a token."""

    name: str
    deployment: str
    site_url: str
    project: str
    expires_at: str | None
    token_definition: str
    email_definition: str
    state: ConnectionState


@dataclass(frozen=True)
class JiraCredentials:
    """Ready-to-use credentials for a Jira connection. `token` and `authorization` are
    never part of `repr()` or `str()`."""

    connection: str
    #: `cloud`, `cloud_scoped` or `data_center`.
    deployment: str
    #: The URL to call: the site, or the API gateway for scoped tokens.
    base_url: str
    site_url: str
    #: `basic` or `bearer`.
    scheme: str
    #: The account email (Cloud); empty for Data Center.
    username: str
    token: str = field(repr=False)
    #: The ready `Authorization` header value.
    authorization: str = field(repr=False)
    project: str = ""
    expires_at: str | None = None
    days_left: int | None = None
    warnings: tuple[str, ...] = ()

    def headers(self) -> dict[str, str]:
        """Headers for a Jira REST call."""
        return {"Authorization": self.authorization, "Accept": "application/json"}

    def __repr__(self) -> str:
        return (
            f"JiraCredentials(connection={self.connection!r}, deployment={self.deployment!r}, "
            f"base_url={self.base_url!r}, scheme={self.scheme!r}, username={self.username!r}, "
            f"token={REDACTED}, authorization={REDACTED}, project={self.project!r}, "
            f"expires_at={self.expires_at!r}, days_left={self.days_left!r}, warnings={self.warnings!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class AuthFailureReport:
    """The daemon's answer to "Jira said 401" (`report_auth_failure()`)."""

    connection: str
    #: True when the vault held a different token than the one that failed.
    token_changed: bool
    state: ConnectionState
    #: The rotated credentials, verified, when the token changed.
    credentials: JiraCredentials | None


def _timestamp(message: Timestamp, present: bool) -> datetime | None:
    if not present:
        return None
    return datetime.fromtimestamp(message.seconds, tz=timezone.utc) + timedelta(microseconds=message.nanos // 1000)


def _duration(message: Duration, present: bool) -> timedelta | None:
    if not present:
        return None
    return timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)


def _enum_suffix(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def secret_from_pb(message: secrets_pb2.Secret) -> Secret:
    cache_name = _enum_suffix(secrets_pb2.CacheOutcome.Name(message.cache), "CACHE_OUTCOME_")
    cache = CacheOutcome.__members__.get(cache_name, CacheOutcome.UNKNOWN)
    return Secret(
        name=message.name,
        value=bytes(message.value),
        backend=message.backend,
        version=message.version_id if message.HasField("version_id") else None,
        fetched_at=_timestamp(message.fetched_at, message.HasField("fetched_at")),
        cache=cache,
        trimmed=message.trimmed,
        stale=message.stale,
        age=_duration(message.age, message.HasField("age")),
        stale_reason=message.stale_reason if message.HasField("stale_reason") else None,
        metadata=dict(message.metadata),
        source=message.source,
        _text=message.text if message.HasField("text") else None,
    )


def definition_from_pb(message: secrets_pb2.Definition) -> Definition:
    trim = {secrets_pb2.TRIM_POLICY_TRIM: True, secrets_pb2.TRIM_POLICY_NONE: False}.get(message.trim)
    return Definition(
        name=message.name,
        backend=message.backend,
        backend_type=message.backend_type,
        description=message.description,
        trim=trim,
        secret=message.secret,
        key=message.key if message.HasField("key") else None,
        ttl=timedelta(seconds=message.ttl_seconds),
    )


def watch_event_from_pb(message: secrets_pb2.WatchEvent) -> WatchEvent:
    kind_name = _enum_suffix(secrets_pb2.WatchEventKind.Name(message.kind), "WATCH_EVENT_KIND_")
    return WatchEvent(
        name=message.name,
        kind=WatchEventKind.__members__.get(kind_name, WatchEventKind.UNKNOWN),
        version=message.version_id if message.HasField("version_id") else None,
        fetched_at=_timestamp(message.fetched_at, message.HasField("fetched_at")),
        message=message.message,
    )


def state_from_pb(message: jira_pb2.ConnectionState) -> ConnectionState:
    status_name = _enum_suffix(jira_pb2.ConnectionStatus.Name(message.status), "CONNECTION_STATUS_")
    return ConnectionState(
        status=ConnectionStatus.__members__.get(status_name, ConnectionStatus.UNKNOWN),
        message=message.message,
        last_verified=(
            datetime.fromtimestamp(message.last_verified_unix, tz=timezone.utc)
            if message.HasField("last_verified_unix")
            else None
        ),
        display_name=message.display_name,
        account_id=message.account_id,
        project_keys=tuple(message.project_keys),
        consecutive_failures=message.consecutive_failures,
    )


def connection_event_from_pb(message: jira_pb2.ConnectionEvent) -> ConnectionEvent:
    return ConnectionEvent(message.connection, state_from_pb(message.state))


def _deployment(value: int) -> str:
    return _enum_suffix(jira_pb2.JiraDeployment.Name(value), "JIRA_DEPLOYMENT_").lower()


def credentials_from_pb(message: jira_pb2.GetCredentialsResponse) -> JiraCredentials:
    return JiraCredentials(
        connection=message.connection,
        deployment=_deployment(message.deployment),
        base_url=message.base_url,
        site_url=message.site_url,
        scheme=_enum_suffix(jira_pb2.AuthScheme.Name(message.scheme), "AUTH_SCHEME_").lower(),
        username=message.username,
        token=message.token,
        authorization=message.authorization,
        project=message.project,
        expires_at=message.expires_at if message.HasField("expires_at") else None,
        days_left=message.days_left if message.HasField("days_left") else None,
        warnings=tuple(message.warnings),
    )


def connection_from_pb(message: jira_pb2.JiraConnection) -> JiraConnection:
    return JiraConnection(
        name=message.name,
        deployment=_deployment(message.deployment),
        site_url=message.site_url,
        project=message.project,
        expires_at=message.expires_at if message.HasField("expires_at") else None,
        token_definition=message.token_definition,
        email_definition=message.email_definition,
        state=state_from_pb(message.state),
    )


def report_from_pb(message: jira_pb2.ReportAuthFailureResponse) -> AuthFailureReport:
    return AuthFailureReport(
        connection=message.connection,
        token_changed=message.token_changed,
        state=state_from_pb(message.state),
        credentials=credentials_from_pb(message.credentials) if message.HasField("credentials") else None,
    )
