"""MQTT login for the three auth modes of the session (reference §1, §2, §3.1).

- ``direct``: sign the CONNECT with the device secret (securemode 2 over TLS, 3 over TCP).
- ``http``: HTTPS device auth through the module (``/auth/devicename``) gives iotId/iotToken,
  used as MQTT username/password over TLS; the token is reused until it nears its 7-day end or
  the broker refuses it.
- ``dynreg``: dynamic registration (``/auth/register/device``) with the product secret gives a
  device secret, saved to ``store_path`` so the device registers once; then ``direct``.

``Login.credentials(http)`` returns a ``sign.MQTTCredentials`` (a named tuple); ``http`` is the
driver's ``HTTPClient``, used only when ``needs_http`` says so (over the SAPBR bearer), else None.
The session imports this module only to log in and unloads it afterwards (with sign, auth,
digest), so ``Login.token`` carries the iotToken cache from one login to the next.
"""

import json
from time import ticks_diff

from micropython import const

from aliyun.sign import MQTTCredentials, mqtt_credentials, mqtt_host

_TOKEN_LIFE_MS = const(6 * 24 * 3600 * 1000)  # iotToken lasts 7 days (§2); renew a day early


def needs_http(config: dict, store_path: str, token, now_ms) -> bool:
    """True when the next login makes an HTTPS request (so the SAPBR bearer must be open):
    HTTPS auth without a fresh iotToken (``token`` as kept by ``Login``), or a dynamic
    registration not done yet."""
    mode = config["auth"]
    if mode == "http":
        return token is None or _expired(token, now_ms)
    return mode == "dynreg" and load_secret(store_path, config) is None


def _expired(token, now_ms) -> bool:
    # ticks_diff spans +-6.2 days on a board (2**30 ms ticks): a token obtained longer ago can
    # read as fresh; the broker then refuses it, and that clears it (bringup._connect).
    return ticks_diff(now_ms, token[4]) > _TOKEN_LIFE_MS


def load_secret(path: str, config: dict):
    """The device secret saved by an earlier dynamic registration of this device, or None."""
    for name in (path, path + ".bak"):
        try:
            with open(name) as f:
                saved = json.load(f)
            if isinstance(saved, dict):
                break
        except (OSError, ValueError):
            pass
    else:
        return None
    if saved.get("product_key") != config["product_key"]:
        return None  # registered for another product: register again
    if config["device_name"] and saved.get("device_name") != config["device_name"]:
        return None
    return saved.get("device_secret") or None


class Login:
    def __init__(self, config: dict, device_name: str, store_path: str, now_ms, log, token=None):
        self.config = config
        self.device_name = device_name
        self.store_path = store_path
        self._now_ms = now_ms
        self._log = log
        # (iotId, iotToken, host, port, obtained at ms): plain values, kept by the caller.
        self.token = token

    async def credentials(self, http) -> MQTTCredentials:
        cfg = self.config
        mode = cfg["auth"]
        pk, dn = cfg["product_key"], self.device_name
        client_id = pk + "." + dn
        host = cfg["endpoint"] or mqtt_host(pk, cfg["region"])
        if mode == "http":
            token = self.token
            if token is None or _expired(token, self._now_ms()):
                from aliyun import auth  # HTTPS auth only: direct logins never load it

                form = auth.auth_form(pk, dn, cfg["device_secret"], client_id, cfg["signmethod"])
                status, body = await self._post(http, auth.AUTH_PATH, form)
                token = auth.parse_auth_reply(body, status) + (self._now_ms(),)
                self.token = token
                self._log("info", "auth: iotToken obtained")
            # §2: connect over TLS to the host the reply names (else the product's region host).
            return MQTTCredentials(
                client_id,
                token[0],
                token[1],
                token[2] or host,
                token[3] or cfg["port"],
                True,
                cfg["keepalive_s"],
            )
        secret = cfg["device_secret"]
        if mode == "dynreg":
            secret = load_secret(self.store_path, cfg) or await self._register(http)
        return mqtt_credentials(
            pk,
            dn,
            secret,
            client_id,
            cfg["signmethod"],
            cfg["tls"],
            host,
            cfg["port"],
            cfg["keepalive_s"],
        )

    async def _post(self, http, path: str, form: str):
        from aliyun.auth import CONTENT_TYPE, auth_host

        url = "https://" + auth_host(self.config["region"]) + path
        return await http.post(url, form, ("Content-Type: " + CONTENT_TYPE,), 60000)

    async def _register(self, http) -> str:
        from aliyun import dynreg  # lazy: only devices that register need it

        cfg = self.config
        pk, dn = cfg["product_key"], self.device_name
        form = dynreg.register_form(
            pk, dn, cfg["product_secret"], dynreg.make_random(), cfg["signmethod"]
        )
        status, body = await self._post(http, dynreg.REGISTER_PATH, form)
        secret = dynreg.parse_register_reply(body, status)
        del form, body  # RAM for the save
        from aliyun.secret import save_secret

        save_secret(
            self.store_path, {"product_key": pk, "device_name": dn, "device_secret": secret}
        )
        self._log("info", "dynreg: device registered, secret saved to " + self.store_path)
        return secret
