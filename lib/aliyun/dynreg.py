"""Dynamic registration over HTTPS (一型一密 pre-registration, aliyun-iot.md §3.1): a device
holding the product secret obtains its device secret.

Sign (§3): ``HMAC(productSecret, "deviceName" + dn + "productKey" + pk + "random" + random)``.
Import this module only when the device registers. Registration over MQTT (§3.2) is a host
tool (tools/aliyun_sign.py).
"""

from aliyun.auth import parse_reply, require_str, urlencode
from aliyun.sign import sign

REGISTER_PATH = "/auth/register/device"


def make_random(length: int = 15) -> str:
    """A random alphanumeric string for the ``random`` field (any string is accepted, §3.1)."""
    try:
        from os import urandom

        raw = urandom(length)
    except ImportError:
        from random import getrandbits

        raw = bytes(getrandbits(8) for _ in range(length))
    alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(alnum[b % 62] for b in raw)


def register_form(
    product_key: str,
    device_name: str,
    product_secret: str,
    random: str,
    signmethod: str = "hmacsha256",
) -> str:
    """The form body for ``POST https://iot-auth.${region}.aliyuncs.com/auth/register/device``.

    Note the field is ``signMethod`` here (camel case), unlike ``signmethod`` in device auth.
    """
    fields = [("productKey", product_key), ("deviceName", device_name), ("random", random)]
    fields.append(("sign", sign(dict(fields), product_secret, signmethod, "productSecret")))
    fields.append(("signMethod", signmethod))
    return urlencode(fields)


def parse_register_reply(body: "bytes | str", status: int = 200) -> str:
    """The device secret in the ``/auth/register/device`` reply; AuthError/ReplyError else."""
    return require_str(parse_reply(body, status), "deviceSecret")
