import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CacheOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_OUTCOME_UNSPECIFIED: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_HIT: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_MISS: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_STALE: _ClassVar[CacheOutcome]

class TrimPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIM_POLICY_UNSPECIFIED: _ClassVar[TrimPolicy]
    TRIM_POLICY_TRIM: _ClassVar[TrimPolicy]
    TRIM_POLICY_NONE: _ClassVar[TrimPolicy]

class WatchEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_EVENT_KIND_UNSPECIFIED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_CURRENT: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_CHANGED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_ERROR: _ClassVar[WatchEventKind]
CACHE_OUTCOME_UNSPECIFIED: CacheOutcome
CACHE_OUTCOME_HIT: CacheOutcome
CACHE_OUTCOME_MISS: CacheOutcome
CACHE_OUTCOME_STALE: CacheOutcome
TRIM_POLICY_UNSPECIFIED: TrimPolicy
TRIM_POLICY_TRIM: TrimPolicy
TRIM_POLICY_NONE: TrimPolicy
WATCH_EVENT_KIND_UNSPECIFIED: WatchEventKind
WATCH_EVENT_KIND_CURRENT: WatchEventKind
WATCH_EVENT_KIND_CHANGED: WatchEventKind
WATCH_EVENT_KIND_ERROR: WatchEventKind

class ResolveRequest(_message.Message):
    __slots__ = ("name", "max_age", "refresh")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    name: str
    max_age: _duration_pb2.Duration
    refresh: bool
    def __init__(self, name: _Optional[str] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., refresh: _Optional[bool] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: Secret
    def __init__(self, secret: _Optional[_Union[Secret, _Mapping]] = ...) -> None: ...

class Secret(_message.Message):
    __slots__ = ("name", "value", "text", "backend", "version_id", "fetched_at", "cache", "trimmed", "metadata", "stale", "age", "stale_reason", "source")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    STALE_REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: bytes
    text: str
    backend: str
    version_id: str
    fetched_at: _timestamp_pb2.Timestamp
    cache: CacheOutcome
    trimmed: bool
    metadata: _containers.ScalarMap[str, str]
    stale: bool
    age: _duration_pb2.Duration
    stale_reason: str
    source: int
    def __init__(self, name: _Optional[str] = ..., value: _Optional[bytes] = ..., text: _Optional[str] = ..., backend: _Optional[str] = ..., version_id: _Optional[str] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cache: _Optional[_Union[CacheOutcome, str]] = ..., trimmed: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., stale: _Optional[bool] = ..., age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., stale_reason: _Optional[str] = ..., source: _Optional[int] = ...) -> None: ...

class ResolveBatchRequest(_message.Message):
    __slots__ = ("names", "items")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    items: _containers.RepeatedCompositeFieldContainer[ResolveRequest]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., items: _Optional[_Iterable[_Union[ResolveRequest, _Mapping]]] = ...) -> None: ...

class ResolveBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ResolveResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ResolveResult, _Mapping]]] = ...) -> None: ...

class ResolveResult(_message.Message):
    __slots__ = ("name", "secret", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    secret: Secret
    error: ResolveError
    def __init__(self, name: _Optional[str] = ..., secret: _Optional[_Union[Secret, _Mapping]] = ..., error: _Optional[_Union[ResolveError, _Mapping]] = ...) -> None: ...

class ResolveError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ListDefinitionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDefinitionsResponse(_message.Message):
    __slots__ = ("definitions",)
    DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    definitions: _containers.RepeatedCompositeFieldContainer[Definition]
    def __init__(self, definitions: _Optional[_Iterable[_Union[Definition, _Mapping]]] = ...) -> None: ...

class Definition(_message.Message):
    __slots__ = ("name", "backend", "backend_type", "description", "trim", "secret", "key", "ttl_seconds", "sources")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRIM_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    backend_type: str
    description: str
    trim: TrimPolicy
    secret: str
    key: str
    ttl_seconds: int
    sources: _containers.RepeatedCompositeFieldContainer[DefinitionSource]
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., backend_type: _Optional[str] = ..., description: _Optional[str] = ..., trim: _Optional[_Union[TrimPolicy, str]] = ..., secret: _Optional[str] = ..., key: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[DefinitionSource, _Mapping]]] = ...) -> None: ...

class DefinitionSource(_message.Message):
    __slots__ = ("backend", "backend_type", "secret", "key")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_TYPE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    backend: str
    backend_type: str
    secret: str
    key: str
    def __init__(self, backend: _Optional[str] = ..., backend_type: _Optional[str] = ..., secret: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class InvalidateRequest(_message.Message):
    __slots__ = ("name", "all")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    name: str
    all: bool
    def __init__(self, name: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class InvalidateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("name", "kind", "version_id", "fetched_at", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: WatchEventKind
    version_id: str
    fetched_at: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[WatchEventKind, str]] = ..., version_id: _Optional[str] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...
