"""Dynamic registration over MQTT (reference §3.2): register, regnwl and connwl logins."""

import json

import pytest

from tools import aliyun_sign as sign

from .helpers import credentials


def register_login(product, dn, auth_type="register", method="hmacsha256", securemode=2):
    random = "R4nd0m"
    content = sign.sign_content(
        {"deviceName": dn, "productKey": product["productKey"], "random": random},
        ("deviceName", "productKey", "random"),
    )
    client_id = "%s.%s|random=%s,authType=%s,securemode=%d,signmethod=%s|" % (
        dn,
        product["productKey"],
        random,
        auth_type,
        securemode,
        method,
    )
    password = sign.hmac_sign(content, product["productSecret"], method)
    return client_id, dn + "&" + product["productKey"], password


@pytest.mark.parametrize("method", ["hmacsha256", "hmacmd5"])
def test_register_pushes_the_secret(cloud, clients, method):
    product = cloud.product(dynamic_register=True)
    device = cloud.device(product)
    # keep-alive is not checked during registration (§3.2): 10 s would be refused otherwise
    reg = clients(
        cloud,
        *register_login(product, device["deviceName"], method=method),
        tls=True,
        keepalive=10,
    )
    assert reg.connect() == 0
    topic, payload = reg.expect()  # pushed without a SUBSCRIBE
    assert topic == "/ext/register"
    assert json.loads(payload) == {
        "productKey": product["productKey"],
        "deviceName": device["deviceName"],
        "deviceSecret": device["deviceSecret"],
    }
    row = cloud.watcher.wait(
        lambda r: r["topic"] == "/ext/register" and r["deviceName"] == device["deviceName"]
    )
    assert device["deviceSecret"] not in row["content"]
    # a registration session can do nothing else
    assert reg.subscribe("/%s/%s/user/get" % (product["productKey"], device["deviceName"])) == 0x80
    reg.close()
    # then a normal login with the pushed secret
    login = dict(device, deviceSecret=json.loads(payload)["deviceSecret"])
    assert clients(cloud, *credentials(login, securemode=2), tls=True).connect() == 0


@pytest.mark.parametrize(
    "case,rc",
    [("tcp", 5), ("wrong-secret", 4), ("closed-product", 5), ("not-created", 4), ("no-random", 2)],
)
def test_register_refusals(cloud, clients, case, rc):
    product = cloud.product(dynamic_register=case != "closed-product")
    device = cloud.device(product)
    dn = "notcreated" if case == "not-created" else device["deviceName"]
    client_id, user, password = register_login(product, dn)
    tls = case != "tcp"
    if case == "wrong-secret":
        password = "0" * 64
    elif case == "no-random":
        client_id = client_id.replace("random=R4nd0m,", "")
    assert clients(cloud, client_id, user, password, tls=tls).connect() == rc


def test_register_after_activation_is_refused(cloud, clients, online):
    product = cloud.product(dynamic_register=True)
    device = cloud.device(product)
    online(device)
    dn = device["deviceName"]
    cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "online")
    assert clients(cloud, *register_login(product, dn), tls=True).connect() == 5


def test_regnwl_then_connwl(cloud, clients):
    """Pre-registration-free: the device gets clientId + deviceToken, then logs in with them."""
    product = cloud.product(dynamic_register=True)
    dn = "newdevice01"
    reg = clients(cloud, *register_login(product, dn, "regnwl", securemode=-2), tls=True)
    assert reg.connect() == 0
    topic, payload = reg.expect()
    assert topic == "/ext/regnwl"
    body = json.loads(payload)
    assert set(body) == {"clientId", "productKey", "deviceName", "deviceToken"}
    assert (body["productKey"], body["deviceName"]) == (product["productKey"], dn)
    reg.close()
    client_id = body["clientId"] + "|authType=connwl,securemode=-2,_ss=1,ext=3|"
    user = dn + "&" + product["productKey"]
    assert clients(cloud, client_id, user, "bad-token", tls=True).connect() == 4
    assert clients(cloud, client_id, user, body["deviceToken"]).connect() == 5  # TLS only
    dev = clients(cloud, client_id, user, body["deviceToken"], tls=True)
    assert dev.connect() == 0
    row = cloud.watcher.wait(lambda r: r["deviceName"] == dn and r["status"] == "online")
    assert '"auth": "deviceToken"' in row["content"]
    assert cloud.registry.device(product["productKey"], dn)["state"] == "online"
