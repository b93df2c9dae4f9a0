"""The package README's quick start runs as written against the daemon."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

from conftest import Fixture

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_the_quick_start_is_ten_lines_and_runs(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    quick_start = blocks[0]
    assert len(quick_start.splitlines()) <= 10
    monkeypatch.setenv("VAULTBRIDGE_ADDR", fx.uds)
    printed = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(quick_start, str(README), "exec"), namespace)
    assert namespace["token"] == fx.values["jira-api-token"]
    assert "Secret(name='jira-api-token', value=[REDACTED]" in printed.getvalue()
    assert "no-such-definition" in printed.getvalue()
    assert fx.values["jira-api-token"] not in printed.getvalue()
