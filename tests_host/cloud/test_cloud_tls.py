"""TLS as the Air724 speaks it (reference air724-at §8): TLS 1.2 with RSA key exchange only.

The client offers exactly the module's six suites (those the local OpenSSL still builds: RC4
and 3DES are gone from OpenSSL 3, the AES ones remain) and at most TLS 1.2; the broker's TLS
listener and iot-auth must both complete the handshake and serve the request.
"""

import http.client
import json
import socket
import ssl

import pytest

from tools.cloud.certs import MODULE_SUITES

from .helpers import WAIT, Device, credentials
from .test_cloud_https import FORM, auth_fields


def module_context(cloud, suites=None):
    """A client context that offers only the Air724's suites, TLS 1.2 at most."""
    context = ssl.create_default_context(cafile=cloud.ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(":".join(suites or MODULE_SUITES.values()))
    return context


def available_suites():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(":".join(MODULE_SUITES.values()))
    return [c["name"] for c in context.get_ciphers() if not c["name"].startswith("TLS_")]


def test_the_client_context_offers_only_the_module_suites():
    offered = available_suites()
    assert offered and set(offered) <= set(MODULE_SUITES.values())
    assert {"AES128-SHA", "AES256-SHA"} <= set(offered)  # kept by every OpenSSL 3 build


@pytest.mark.parametrize("port_name", ["mqtts", "https"])
@pytest.mark.parametrize("suite", available_suites())
def test_handshake_with_each_module_suite(cloud, port_name, suite):
    context = module_context(cloud, [suite])
    raw = socket.create_connection(("127.0.0.1", cloud.port(port_name)), timeout=WAIT)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.cipher()[0] == suite  # RSA key exchange: no ECDHE, no DHE


def test_mqtt_over_tls_with_the_module_suites(cloud):
    device = cloud.device()
    dev = Device(cloud, *credentials(device, securemode=2))
    dev.client.tls_set_context(module_context(cloud))
    dev.tls = True  # the TLS port, with the module's context instead of the default one
    try:
        assert dev.connect() == 0
        tls = dev.client.socket()
        assert tls.cipher()[0] in MODULE_SUITES.values() and tls.version() == "TLSv1.2"
    finally:
        dev.close()


def test_iot_auth_with_the_module_suites(cloud):
    device = cloud.device()
    conn = http.client.HTTPSConnection(
        "localhost", cloud.port("https"), context=module_context(cloud), timeout=WAIT
    )
    try:
        conn.connect()
        assert conn.sock.cipher()[0] in MODULE_SUITES.values()
        body = "&".join("%s=%s" % item for item in auth_fields(device).items())
        conn.request("POST", "/auth/devicename", body.encode(), {"Content-Type": FORM})
        reply = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert reply["code"] == 200 and reply["data"]["iotToken"]


def test_modern_clients_still_get_forward_secrecy(cloud):
    """Adding the RSA suites takes nothing away: a default client gets TLS 1.3 (ECDHE)."""
    raw = socket.create_connection(("127.0.0.1", cloud.port("mqtts")), timeout=WAIT)
    with cloud.ssl_context().wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.3"
