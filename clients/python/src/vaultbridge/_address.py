"""Daemon addresses, in the forms `vaultbridge get --addr` accepts."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_SOCKET = "/tmp/vaultbridge.sock"

# grpcio sends a Unix socket's path as the HTTP/2 :authority, which the daemon's HTTP/2
# stack rejects as malformed; "localhost" is the convention (grpc-go, Kubernetes).
_UNIX_OPTIONS: tuple[tuple[str, str], ...] = (("grpc.default_authority", "localhost"),)


@dataclass(frozen=True)
class Address:
    """Where the daemon listens, and how grpcio reaches it."""

    #: What the caller wrote (or the default), for error messages.
    text: str
    #: The grpcio target: `unix:/path` or `host:port`.
    target: str
    #: Channel options the target needs.
    options: tuple[tuple[str, str], ...]
    #: True for `https://`: a TLS channel with the system's trust roots.
    tls: bool = False

    @classmethod
    def parse(cls, text: str) -> Address:
        """`unix:/path`, `unix:///path`, a path starting with `/` or `.`, `host:port`,
        `http://host:port` or `https://host:port`."""
        if not text:
            raise ValueError("the daemon address is empty")
        for prefix in ("unix://", "unix:"):
            if text.startswith(prefix):
                return cls._unix(text, text[len(prefix):])
        if text.startswith(("/", ".")):
            return cls._unix(text, text)
        for prefix, tls in (("http://", False), ("https://", True)):
            if text.startswith(prefix):
                host = text[len(prefix):].rstrip("/")
                if not host or "/" in host:
                    raise ValueError(f"`{text}` is not host:port after {prefix}")
                return cls(text, host, (), tls)
        return cls(text, text, (), False)

    @classmethod
    def _unix(cls, text: str, path: str) -> Address:
        if not path:
            raise ValueError(f"`{text}` names no socket path")
        return cls(text, f"unix:{path}", _UNIX_OPTIONS)

    @classmethod
    def default(cls) -> Address:
        """`VAULTBRIDGE_ADDR`, else the example config's socket (`VAULTBRIDGE_SOCKET`,
        else /tmp/vaultbridge.sock), as the CLI does."""
        addr = os.environ.get("VAULTBRIDGE_ADDR")
        if addr:
            return cls.parse(addr)
        socket = os.environ.get("VAULTBRIDGE_SOCKET") or DEFAULT_SOCKET
        return cls._unix(socket, socket)

    @classmethod
    def resolve(cls, address: str | None) -> Address:
        """The given address, or the default one when it is None."""
        return cls.default() if address is None else cls.parse(address)
