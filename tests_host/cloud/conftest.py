"""Fixtures for the local cloud: a server on 127.0.0.1 (port 0), devices, paho clients.

One server runs per test module (``cloud``); every test makes its own product and devices, so
tests do not see each other's sessions. Waits are on events with timeouts, never fixed sleeps.
"""

import pytest

from tools.cloud.server import CloudThread

from .helpers import Cloud, Device, credentials


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("aliyun-local")
    with CloudThread(state_dir) as thread:
        handle = Cloud(thread, state_dir)
        yield handle
        leaked = handle.secrets_in_log()
        handle.registry.close()
    assert not leaked, "secrets in the message log"  # the log never holds a secret


@pytest.fixture(autouse=True)
def _no_user_state(monkeypatch, tmp_path):
    """Nothing may fall back to the user's state dir."""
    monkeypatch.setenv("ALIYUN_LOCAL_STATE", str(tmp_path / "unused-state"))


@pytest.fixture
def clients():
    """Factory of Device clients; all are closed after the test."""
    made = []

    def make(cloud, client_id, username, password, **kwargs):
        dev = Device(cloud, client_id, username, password, **kwargs)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


@pytest.fixture
def online(cloud, clients):
    """Connect a registry device directly (TCP, securemode=3); returns the Device client."""

    def connect(device, **kwargs):
        client_id, username, password = credentials(device)
        dev = clients(cloud, client_id, username, password, **kwargs)
        assert dev.connect() == 0
        return dev

    return connect
