"""Address forms, as `vaultbridge get --addr` takes them (no daemon needed)."""

from __future__ import annotations

import pytest

from vaultbridge._address import Address


@pytest.mark.parametrize(
    ("text", "target", "unix", "tls"),
    [
        ("unix:/run/vb.sock", "unix:/run/vb.sock", True, False),
        ("unix:///run/vb.sock", "unix:/run/vb.sock", True, False),
        ("/run/vb.sock", "unix:/run/vb.sock", True, False),
        ("./vb.sock", "unix:./vb.sock", True, False),
        ("127.0.0.1:50051", "127.0.0.1:50051", False, False),
        ("http://[::1]:1", "[::1]:1", False, False),
        ("https://vb.example:443", "vb.example:443", False, True),
    ],
)
def test_addresses_parse_as_the_cli_documents(text: str, target: str, unix: bool, tls: bool) -> None:
    address = Address.parse(text)
    assert address.target == target
    assert address.tls == tls
    # Over a socket, "localhost" is the authority (the daemon's HTTP/2 stack refuses a path).
    assert (("grpc.default_authority", "localhost") in address.options) == unix


@pytest.mark.parametrize("text", ["", "unix:", "http://", "http://host:1/path"])
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Address.parse(text)


def test_the_default_is_vaultbridge_addr_then_vaultbridge_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULTBRIDGE_ADDR", raising=False)
    monkeypatch.delenv("VAULTBRIDGE_SOCKET", raising=False)
    assert Address.default().target == "unix:/tmp/vaultbridge.sock"
    monkeypatch.setenv("VAULTBRIDGE_SOCKET", "/run/x.sock")
    assert Address.default().target == "unix:/run/x.sock"
    monkeypatch.setenv("VAULTBRIDGE_ADDR", "localhost:7")
    assert Address.default().target == "localhost:7"
    assert Address.resolve("/other.sock").target == "unix:/other.sock"
