"""Fixtures for the emulator tests: a test CA, a recording MQTT broker (TCP and TLS), HTTP(S)
servers, and emulator processes wired to them by name (``--resolve``), all on 127.0.0.1."""

import pytest
import trustme

from .support import AUTH_HOST, RECORDER, BrokerThread, ClosingServer, Sim, WebServer


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A trustme CA and one server certificate for the Aliyun names and localhost."""
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("*.iot-as-mqtt.cn-shanghai.aliyuncs.com", AUTH_HOST, "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="session")
def broker(certs):
    thread = BrokerThread(certs["cert"], certs["key"]).start()
    yield thread
    thread.stop()


@pytest.fixture
def recorder():
    return RECORDER


@pytest.fixture(scope="session")
def https_server(certs):
    server = WebServer(certs["cert"], certs["key"])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_server():
    server = WebServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def closer():
    server = ClosingServer()
    yield server
    server.stop()


@pytest.fixture
def resolve_args(broker, https_server, http_server, closer):
    """--resolve rules: real Aliyun names → local servers (TLS MQTT on 1883 like Aliyun)."""
    return [
        "--strict-resolve",
        "--resolve",
        f"*.iot-as-mqtt.cn-shanghai.aliyuncs.com:1883=127.0.0.1:{broker.tls_port}",
        "--resolve",
        f"mqtt-tcp.example.com=127.0.0.1:{broker.tcp_port}",
        "--resolve",
        f"{AUTH_HOST}=127.0.0.1:{https_server.port}",
        "--resolve",
        f"plain.example.com=127.0.0.1:{http_server.port}",
        "--resolve",
        f"other.example.com=127.0.0.1:{https_server.port}",
        "--resolve",
        f"closer.example.com=127.0.0.1:{closer.port}",
    ]


@pytest.fixture
def start_sim(tmp_path):
    """Factory: start an emulator with extra arguments; every one is stopped afterwards."""
    sims = []

    def start(*args, **kwargs):
        sim = Sim(tmp_path, *args, **kwargs)
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(start_sim, resolve_args):
    """A fast emulator wired to the local servers."""
    return start_sim(*resolve_args)


@pytest.fixture
def port(sim):
    """A TCP client of ``sim`` whose autobaud is trained and echo switched off."""
    at = sim.port()
    at.train()
    at.expect(rb"\+CPIN: READY\r\n")
    at.ok("ATE0")
    return at
