"""Fixtures of the end-to-end tests (see harness.py for how to write one)."""

import pytest

from .harness import Stack


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """An empty ``Stack`` in the test's folder; everything it starts stops afterwards, and no
    process may have printed a secret."""
    monkeypatch.setenv("ALIYUN_LOCAL_STATE", str(tmp_path / "unused-state"))
    handle = Stack(tmp_path)
    try:
        yield handle
    finally:
        handle.close()
        # Every process's lines, kept in the test's folder for a failure's post-mortem.
        text = "".join("%s %s %s\n" % line for line in handle.lines)
        (tmp_path / "stack.log").write_text(text, errors="backslashreplace")
    assert not handle.secrets_seen(), "a secret was printed"
