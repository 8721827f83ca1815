"""Air724UG driver on top of the AT engine: module, bearer, HTTP and MQTT command sets.

Parts, each usable alone on an ``atmodem.ATChannel``:

- ``air724.module``: autobaud, echo, firmware version, IMEI/ICCID, SIM, signal, network, clock;
- ``air724.bearer``: the SAPBR bearer used by HTTP;
- ``air724.http``: one-call HTTP(S) requests;
- ``air724.mqtt``: the module's built-in MQTT client;
- ``air724.events``: link events (CLOSED, PDP deactivation, RDY, SIM removed).

``Air724(stream)`` puts them together on one channel.
"""

from air724.text import check_publish  # noqa: F401 - part of the driver's API


class Air724:
    """The whole driver on one stream (see ``atmodem.ATChannel`` for ``stream``/``writer``).

    Attributes: ``channel``, ``events``, ``module``, ``bearer``, ``http``, ``mqtt`` and
    ``inbox`` (the MQTT client's queue of incoming messages: it outlives the client). Call
    ``start()`` inside the event loop, ``await close()`` at the end. ``on_event`` receives the
    channel's ``EV_*`` events.
    """

    def __init__(
        self,
        stream,
        writer=None,
        bufsize: int = 1024,
        data_max: int = 8192,
        queue_len: int = 8,
        cid: int = 1,
    ):
        from air724.events import LinkEvents, Ring
        from atmodem import EV_UNSOLICITED, ATChannel

        self._unsolicited = EV_UNSOLICITED
        self._cid = cid
        self._data_max = data_max
        self._http = self._bearer = self._module = self._mqtt = None
        self.on_event: object = None  # None, or a callable on_event(kind, data)
        self.channel = ATChannel(stream, writer, bufsize, data_max)
        self.channel.on_event = self._event
        self.events = LinkEvents(self.channel)
        self.inbox = Ring(queue_len)

    # Each command set is created on first use. The module checks, HTTP and the SAPBR bearer
    # serve the bring-up only and are dropped by release(); the MQTT client serves from the
    # connect step until the link fails and is dropped by close_mqtt(). Dropped, their code
    # can leave RAM while the rest runs.

    @property
    def mqtt(self):
        if self._mqtt is None:
            from air724.mqtt import MQTTClient

            self._mqtt = MQTTClient(self.channel, self.events, inbox=self.inbox)
        return self._mqtt

    @property
    def module(self):
        if self._module is None:
            from air724.module import Module

            self._module = Module(self.channel)
        return self._module

    @property
    def http(self):
        if self._http is None:
            from air724.http import HTTPClient

            self._http = HTTPClient(self.channel, self._cid, self._data_max)
        return self._http

    @property
    def bearer(self):
        if self._bearer is None:
            from air724.bearer import Bearer

            self._bearer = Bearer(self.channel, self._cid)
        return self._bearer

    def release_http(self) -> None:
        """Forget the HTTP client and the bearer object (the bearer itself stays open)."""
        if self._http is not None:
            self.channel.remove_urc(b"+HTTPACTION:")
        self._http = self._bearer = None

    def release(self) -> None:
        """Forget the bring-up parts created on demand (module checks, HTTP, bearer)."""
        self.release_http()
        self._module = None

    async def close_mqtt(self) -> None:
        """Close the MQTT link if the client was created, then forget the client (its queued
        messages stay in ``inbox``). Best effort: the module may be half gone."""
        client = self._mqtt
        if client is not None:
            self._mqtt = None
            client.detach()
            try:
                await client.close()
            except Exception:
                pass

    def _event(self, kind, data):
        if kind == self._unsolicited:
            self.events.unsolicited(data)  # other DEACT spellings (air724-at.md §5.3)
        cb = self.on_event
        if callable(cb):
            cb(kind, data)

    def start(self) -> None:
        self.channel.start()

    async def close(self) -> None:
        await self.channel.close()
