"""MQTT login for the three auth modes of the session (reference §1, §2, §3.1).

- ``direct``: sign the CONNECT with the device secret (securemode 2 over TLS, 3 over TCP).
- ``http``: HTTPS device auth through the module (``/auth/devicename``) gives iotId/iotToken,
  used as MQTT username/password over TLS; the token is reused until it nears its 7-day end or
  the broker refuses it.
- ``dynreg``: dynamic registration (``/auth/register/device``) with the product secret gives a
  device secret, saved to ``store_path`` so the device registers once; then ``direct``.

``Login.credentials(http)`` returns a ``sign.MQTTCredentials``; ``http`` is the driver's
``HTTPClient`` (only used by the ``http`` and ``dynreg`` modes, over the SAPBR bearer). The
session imports this module only to log in and unloads it afterwards (with sign, auth, digest),
so ``Login.token`` carries the iotToken cache from one login to the next.
"""

import json

from micropython import const

from aliyun import sign

_TOKEN_LIFE_MS = const(6 * 24 * 3600 * 1000)  # iotToken lasts 7 days (§2); renew a day early
_HTTP_TIMEOUT_MS = const(60000)


def needs_http(config: dict, store_path: str) -> bool:
    """True when the next login goes through HTTPS (so the SAPBR bearer must be open)."""
    mode = config["auth"]
    return mode == "http" or (mode == "dynreg" and load_secret(store_path, config) is None)


def load_secret(path: str, config: dict):
    """The device secret saved by an earlier dynamic registration of this device, or None."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
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

    def _client_id(self) -> str:
        return self.config["product_key"] + "." + self.device_name

    def _host(self) -> str:
        cfg = self.config
        return cfg["endpoint"] or sign.mqtt_host(cfg["product_key"], cfg["region"])

    async def credentials(self, http) -> "sign.MQTTCredentials":
        cfg = self.config
        mode = cfg["auth"]
        if mode == "http":
            return await self._token_credentials(http)
        secret = cfg["device_secret"]
        if mode == "dynreg":
            secret = load_secret(self.store_path, cfg) or await self._register(http)
        return sign.mqtt_credentials(
            cfg["product_key"],
            self.device_name,
            secret,
            client_id=self._client_id(),
            signmethod=cfg["signmethod"],
            securemode=sign.SECUREMODE_TLS if cfg["tls"] else sign.SECUREMODE_TCP,
            region=cfg["region"],
            host=self._host(),
            port=cfg["port"],
            keepalive=cfg["keepalive_s"],
        )

    async def _post(self, http, path: str, form: str):
        from aliyun import auth

        url = auth.url(auth.auth_host(self.config["region"]), path)
        headers = ("Content-Type: " + auth.CONTENT_TYPE,)
        return await http.post(url, form, headers, _HTTP_TIMEOUT_MS)

    async def _token_credentials(self, http):
        from aliyun import auth  # HTTPS auth only: direct logins never load it

        cfg = self.config
        token = self.token
        if token is None or self._now_ms() - token[4] > _TOKEN_LIFE_MS:
            form = auth.auth_form(
                cfg["product_key"],
                self.device_name,
                cfg["device_secret"],
                client_id=self._client_id(),
                signmethod=cfg["signmethod"],
            )
            status, body = await self._post(http, auth.AUTH_PATH, form)
            got = auth.parse_auth_reply(body, status)
            token = self.token = (got.iot_id, got.iot_token, got.host, got.port, self._now_ms())
            self._log("info", "auth: iotToken obtained")
        # §2: connect over TLS to the host the reply names (else the product's region host).
        host = token[2] or self._host()
        port = token[3] or cfg["port"]
        return sign.MQTTCredentials(
            self._client_id(), token[0], token[1], host, port, True, cfg["keepalive_s"]
        )

    async def _register(self, http) -> str:
        from aliyun import auth, dynreg  # lazy: only devices that register need them

        cfg = self.config
        form = dynreg.register_form(
            cfg["product_key"],
            self.device_name,
            cfg["product_secret"],
            dynreg.make_random(),
            cfg["signmethod"],
        )
        status, body = await self._post(http, dynreg.REGISTER_PATH, form)
        secret = dynreg.parse_register_reply(body, status).device_secret
        if not secret:
            raise auth.ReplyError("registration reply without deviceSecret")
        record = {
            "product_key": cfg["product_key"],
            "device_name": self.device_name,
            "device_secret": secret,
        }
        with open(self.store_path, "w") as f:
            json.dump(record, f)
        self._log("info", "dynreg: device registered, secret saved to " + self.store_path)
        return secret
