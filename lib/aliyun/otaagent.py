"""OTA agent: the small resident half of over-the-air updates (reference §4.6).

It only listens: pushes on ``/ota/device/upgrade`` and ``…/thing/ota/firmware/get_reply``, the
session going online (report versions, ask for a job, resume a download) and the end of a trial.
Each of these runs as one task of ``aliyun.ota``, imported for it and unloaded afterwards, one
at a time. See ``aliyun.ota`` for the update itself and ``otaboot`` for the switch and the trial.
"""

import asyncio
import sys

RESET_EXIT = 3  # unix port: the exit status standing for a board reset
_SETTLE_MS = 3000
_PARTS = (
    "aliyun.ota",
    "aliyun.otadl",
    "aliyun.otapkg",
    "aliyun.otaboot",
    "air724.http",
    "air724.bearer",
)


class OtaAgent:
    def __init__(self, session, board, log, state, version: str, trial_ms: int = 120000):
        self.session = session
        self.board = board
        self.log = log
        self.state = state or {"slot": None, "version": version, "status": "confirmed"}
        self.factory = version
        self.trial_ms = trial_ms
        self.job = None  # the job in progress (aliyun.ota keeps it in ota/job.json too)
        self.pushed = None  # the last push or get_reply, not parsed yet
        self.failures = 0
        self.last_progress = None
        self.prefix = ""  # "pk/dn" once the device name is known
        self._todo = []
        self._task = None

    @property
    def version(self) -> str:
        return self.state.get("version") or self.factory

    def start(self) -> None:
        """Register with the session (call before ``session.run()``)."""
        self.session.on_state(self._on_state)
        self._subscribe()
        if self.state.get("status") == "trial":
            asyncio.create_task(self._trial())

    def _subscribe(self) -> None:
        topics = self.session.topics
        if not self.prefix and topics is not None:
            self.prefix = topics.user_prefix[1:-6]
            self.session.subscribe("/ota/device/upgrade/" + self.prefix, self._on_push)
            self.session.subscribe(topics.thing_prefix + "ota/firmware/get_reply", self._on_push)

    def _on_state(self, state: str) -> None:
        self._subscribe()
        if state == "online":
            # Once the connect's own traffic (first report, NTP) is done and its garbage gone.
            self.later(_SETTLE_MS, "online")
        elif self._task is not None:
            self._task.cancel()  # the bring-up owns the channel now; resumed once online
            self._task = None
            self._todo = []

    def _on_push(self, topic: str, payload) -> None:
        self.pushed = bytes(payload)
        self.spawn("push")

    async def _trial(self) -> None:
        await self._later(self.trial_ms, "trial")

    def later(self, ms: int, what: str) -> None:
        """Run step ``what`` in ``ms`` if still online, nothing of the update loaded meanwhile."""
        asyncio.create_task(self._later(ms, what))

    async def _later(self, ms: int, what: str) -> None:
        await asyncio.sleep(ms / 1000)
        if self.session.online or what == "trial":
            self.spawn(what)

    def spawn(self, what: str) -> None:
        """Run ``aliyun.ota``'s ``what`` step after the running one."""
        if what not in self._todo:
            self._todo.append(what)
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        from aliyun import unload

        try:
            while self._todo:
                what = self._todo.pop(0)
                try:
                    if what == "download":  # only what a download needs stays loaded
                        from aliyun.otadl import step

                        await step(self)
                    else:
                        from aliyun.ota import step

                        await step(self, what)
                except Exception as exc:  # e.g. no RAM to import: again at the next connect
                    self.log("warning", "ota: %s step failed: %r" % (what, exc))
                finally:
                    step = None
                    unload(_PARTS)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def reset(self) -> None:
        """Reset into the other set once the queued reports are out (unix: exit status 3)."""
        outbox = self.session.outbox
        for _ in range(100):
            if outbox.peek() is None:
                break
            await asyncio.sleep(0.1)
        self.log("info", "ota: reset")
        self.board.reset()
        sys.exit(RESET_EXIT)
