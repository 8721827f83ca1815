"""A test application for the end-to-end thing-model tests (installed as the board's ``app``).

The session checks everything against the every-type TSL's table (``tsl_table``, generated from
tests_host/tsl_all_types.json). Property sets are applied by logging them; ``Calibrate`` (async)
answers ``{"Applied": 1}``; ``Query`` (sync, over RRPC) answers ``{"Count": 7}`` after
``Delay`` ms, so a test can make it too slow. Each JSON message on ``/pk/dn/user/get`` is a
command: ``{"do": "post", "params": {…}}``, ``{"do": "event", "id": …, "values": {…}}`` or
``{"do": "batch", "properties": {…}, "events": {…}}``; the outcome is one log line. It also
subscribes ``/sys/PK/DN/thing/#``, which the cloud refuses.
"""

import asyncio
import json

from aliyun.alink import AlinkError

VERSION = "1.0.0-tsl"  # every application declares its version (main.py logs it, OTA reports it)

class App:
    def __init__(self, session, board, config: dict, log):
        self.session = session
        self.log = log
        self._commands = []
        self._ready = asyncio.Event()
        self._subscribed = False

    def start(self) -> None:
        self.session.use_model("tsl_table")
        self.session.on_state(self._on_state)
        self.session.on_property_set(None, self._on_set)
        self.session.on_service("Calibrate", lambda params: {"Applied": 1})
        self.session.on_service("Query", self._query)
        self._subscribe()

    def _subscribe(self) -> None:
        if not self._subscribed and self.session.topics is not None:
            self.session.subscribe(self.session.topics.user("get"), self._on_command)
            # The wildcard the cloud refuses (SUBACK 0x80): logged, and the rest still works.
            self.session.subscribe(self.session.topics.thing_prefix + "#", self._on_command)
            self._subscribed = True

    def _on_state(self, state: str) -> None:
        self.log("info", "state " + state)
        self._subscribe()

    def _on_set(self, accepted: dict) -> None:
        self.log("info", "applied " + json.dumps(accepted))

    async def _query(self, params: dict) -> dict:
        await asyncio.sleep(params.get("Delay", 0) / 1000)
        return {"Count": 7}

    def _on_command(self, topic: str, payload) -> None:
        self._commands.append(json.loads(payload))
        self._ready.set()

    async def run(self) -> None:
        while True:
            if not self._commands:
                self._ready.clear()
                await self._ready.wait()
                continue
            command = self._commands.pop(0)
            kind = command["do"]
            try:
                code = await self._run(kind, command)
            except AlinkError as exc:
                self.log("warning", "%s refused on the device: %s" % (kind, exc.message))
                continue
            self.log("info", "%s answered %s" % (kind, code))

    async def _run(self, kind: str, command: dict):
        session = self.session
        if kind == "post":
            return await session.post_properties(command["params"])
        if kind == "event":
            return await session.post_event(command["id"], command["values"])
        return await session.post_batch(command.get("properties", {}), command.get("events", {}))

    def summary(self) -> dict:
        return dict(self.session.stats)
