"""The daemon these tests call is started by the Rust end-to-end test
`python_client_suite_passes_against_the_daemon` (tests/e2e/python_client.rs), which
hands its addresses and the values it configured over in `VB_TEST_FIXTURE`. Run alone,
the suite fails at collection rather than skipping."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Fixture:
    """What the Rust side set up."""

    uds: str
    tcp: str
    dir: Path
    #: Definition name -> the text the daemon serves for it.
    values: dict[str, str]
    #: Raw values as stored, before trimming (for the leak checks).
    raw_values: list[str]
    binary: bytes
    jira_url: str
    jira_email: str
    jira_old_token: str
    jira_rotated_token: str
    #: The daemon with access rules: its uds, tcp, token, token_file and plain value.
    access: dict[str, str]

    def address(self, transport: str) -> str:
        return self.uds if transport == "uds" else self.tcp

    def secrets(self) -> list[str]:
        """Every piece of secret material the daemon can serve in this run."""
        return [
            *self.values.values(),
            *self.raw_values,
            self.jira_old_token,
            self.jira_rotated_token,
            self.access["token"],
        ]


def _load() -> Fixture:
    raw = os.environ.get("VB_TEST_FIXTURE")
    if not raw:
        raise RuntimeError(
            "VB_TEST_FIXTURE is not set: these tests run inside `cargo test --test e2e python_client` "
            "(scripts/test), which starts the daemon they call"
        )
    data: dict[str, Any] = json.loads(raw)
    return Fixture(
        uds=data["uds"],
        tcp=data["tcp"],
        dir=Path(data["dir"]),
        values=data["values"],
        raw_values=data["raw_values"],
        binary=bytes.fromhex(data["binary_hex"]),
        jira_url=data["jira"]["url"],
        jira_email=data["jira"]["email"],
        jira_old_token=data["jira"]["old_token"],
        jira_rotated_token=data["jira"]["rotated_token"],
        access={key: str(value) for key, value in data["access"].items()},
    )


FIXTURE = _load()


@pytest.fixture
def fx() -> Fixture:
    return FIXTURE


@pytest.fixture(params=["uds", "tcp"])
def address(request: pytest.FixtureRequest) -> str:
    """The daemon's address over each transport."""
    return FIXTURE.address(str(request.param))


@pytest.fixture
def refusing_address() -> Iterator[str]:
    """A TCP address that refuses connections: bound, never listening, so no other
    process can start answering on it during the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
