from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATUS_UNSPECIFIED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_UNKNOWN: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_CONNECTED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_NEEDS_REAUTHORIZATION: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_FAILED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_UNREACHABLE: _ClassVar[ConnectionStatus]

class JiraDeployment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JIRA_DEPLOYMENT_UNSPECIFIED: _ClassVar[JiraDeployment]
    JIRA_DEPLOYMENT_CLOUD: _ClassVar[JiraDeployment]
    JIRA_DEPLOYMENT_CLOUD_SCOPED: _ClassVar[JiraDeployment]
    JIRA_DEPLOYMENT_DATA_CENTER: _ClassVar[JiraDeployment]

class AuthScheme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTH_SCHEME_UNSPECIFIED: _ClassVar[AuthScheme]
    AUTH_SCHEME_BASIC: _ClassVar[AuthScheme]
    AUTH_SCHEME_BEARER: _ClassVar[AuthScheme]
CONNECTION_STATUS_UNSPECIFIED: ConnectionStatus
CONNECTION_STATUS_UNKNOWN: ConnectionStatus
CONNECTION_STATUS_CONNECTED: ConnectionStatus
CONNECTION_STATUS_NEEDS_REAUTHORIZATION: ConnectionStatus
CONNECTION_STATUS_FAILED: ConnectionStatus
CONNECTION_STATUS_UNREACHABLE: ConnectionStatus
JIRA_DEPLOYMENT_UNSPECIFIED: JiraDeployment
JIRA_DEPLOYMENT_CLOUD: JiraDeployment
JIRA_DEPLOYMENT_CLOUD_SCOPED: JiraDeployment
JIRA_DEPLOYMENT_DATA_CENTER: JiraDeployment
AUTH_SCHEME_UNSPECIFIED: AuthScheme
AUTH_SCHEME_BASIC: AuthScheme
AUTH_SCHEME_BEARER: AuthScheme

class WatchConnectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConnectionEvent(_message.Message):
    __slots__ = ("connection", "state")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    connection: str
    state: ConnectionState
    def __init__(self, connection: _Optional[str] = ..., state: _Optional[_Union[ConnectionState, _Mapping]] = ...) -> None: ...

class ConnectionState(_message.Message):
    __slots__ = ("status", "message", "last_verified_unix", "display_name", "account_id", "project_keys", "consecutive_failures")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_VERIFIED_UNIX_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    status: ConnectionStatus
    message: str
    last_verified_unix: int
    display_name: str
    account_id: str
    project_keys: _containers.RepeatedScalarFieldContainer[str]
    consecutive_failures: int
    def __init__(self, status: _Optional[_Union[ConnectionStatus, str]] = ..., message: _Optional[str] = ..., last_verified_unix: _Optional[int] = ..., display_name: _Optional[str] = ..., account_id: _Optional[str] = ..., project_keys: _Optional[_Iterable[str]] = ..., consecutive_failures: _Optional[int] = ...) -> None: ...

class VerifyConnectionRequest(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: str
    def __init__(self, connection: _Optional[str] = ...) -> None: ...

class VerifyConnectionResponse(_message.Message):
    __slots__ = ("connection", "state")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    connection: str
    state: ConnectionState
    def __init__(self, connection: _Optional[str] = ..., state: _Optional[_Union[ConnectionState, _Mapping]] = ...) -> None: ...

class ReportAuthFailureRequest(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: str
    def __init__(self, connection: _Optional[str] = ...) -> None: ...

class ReportAuthFailureResponse(_message.Message):
    __slots__ = ("connection", "token_changed", "state", "credentials")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CHANGED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    connection: str
    token_changed: bool
    state: ConnectionState
    credentials: GetCredentialsResponse
    def __init__(self, connection: _Optional[str] = ..., token_changed: _Optional[bool] = ..., state: _Optional[_Union[ConnectionState, _Mapping]] = ..., credentials: _Optional[_Union[GetCredentialsResponse, _Mapping]] = ...) -> None: ...

class GetCredentialsRequest(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: str
    def __init__(self, connection: _Optional[str] = ...) -> None: ...

class GetCredentialsResponse(_message.Message):
    __slots__ = ("connection", "deployment", "base_url", "site_url", "scheme", "username", "token", "authorization", "project", "expires_at", "days_left", "warnings")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    SITE_URL_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DAYS_LEFT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    connection: str
    deployment: JiraDeployment
    base_url: str
    site_url: str
    scheme: AuthScheme
    username: str
    token: str
    authorization: str
    project: str
    expires_at: str
    days_left: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, connection: _Optional[str] = ..., deployment: _Optional[_Union[JiraDeployment, str]] = ..., base_url: _Optional[str] = ..., site_url: _Optional[str] = ..., scheme: _Optional[_Union[AuthScheme, str]] = ..., username: _Optional[str] = ..., token: _Optional[str] = ..., authorization: _Optional[str] = ..., project: _Optional[str] = ..., expires_at: _Optional[str] = ..., days_left: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ListConnectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConnectionsResponse(_message.Message):
    __slots__ = ("connections",)
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[JiraConnection]
    def __init__(self, connections: _Optional[_Iterable[_Union[JiraConnection, _Mapping]]] = ...) -> None: ...

class JiraConnection(_message.Message):
    __slots__ = ("name", "deployment", "site_url", "project", "expires_at", "token_definition", "email_definition", "state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    SITE_URL_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    EMAIL_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    deployment: JiraDeployment
    site_url: str
    project: str
    expires_at: str
    token_definition: str
    email_definition: str
    state: ConnectionState
    def __init__(self, name: _Optional[str] = ..., deployment: _Optional[_Union[JiraDeployment, str]] = ..., site_url: _Optional[str] = ..., project: _Optional[str] = ..., expires_at: _Optional[str] = ..., token_definition: _Optional[str] = ..., email_definition: _Optional[str] = ..., state: _Optional[_Union[ConnectionState, _Mapping]] = ...) -> None: ...
