"""The chaos run's application on the MicroPython VM: the example application (firmware/app.py,
installed beside this file as ``app_example``) plus numbered QoS1 messages.

Installed on the run's board as ``app.py``; main.py imports it as it would the example. Every
``period_ms`` (chaos.json, written by the run before each boot) once online for the first time,
``{"chaos":"<boot>.<n>"}`` goes to ``/pk/dn/user/update`` through ``session.publish(..., 1)``:
the session's outbox, so offline ones wait there. Each is logged when the session accepted it
(``chaos accepted <boot>.<n>``, `` full`` when the outbox had to drop one for it), and every
tenth one logs the free heap after a collection (``chaos heap <bytes>``).
"""

import asyncio
import json

from app_example import VERSION  # noqa: F401 - main.py reports app.VERSION (OTA module "app")
from app_example import App as Example


class App(Example):
    def __init__(self, session, board, config, log):
        super().__init__(session, board, config, log)
        with open("chaos.json") as f:
            chaos = json.load(f)
        self._boot = chaos["boot"]
        self._period_ms = chaos["period_ms"]
        self._seq = 0

    async def run(self):
        await asyncio.gather(Example.run(self), self._numbered())

    async def _numbered(self):
        await self._online.wait()
        topic = self.session.topics.user("update")
        while True:
            self._seq += 1
            tag = "%d.%d" % (self._boot, self._seq)
            try:
                kept = await self.session.publish(topic, '{"chaos":"%s"}' % tag, 1)
                self.log("info", "chaos accepted %s%s" % (tag, "" if kept else " full"))
            except Exception as exc:
                self.log("warning", "chaos refused %s: %r" % (tag, exc))
            if self._seq % 10 == 0:
                self.log("info", "chaos heap %d" % self.board.free_heap())
            await asyncio.sleep(self._period_ms / 1000)
