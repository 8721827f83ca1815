"""OTA agent (reference §4.6), imported by ``aliyun.otahook`` while there is something to do.

Events: the session online (report versions, ask for a job, resume a download), a push on
``/ota/device/upgrade`` or a ``get_reply``, the end of a trial. Each runs as one step of
``aliyun.ota`` (or ``aliyun.otadl`` for a download), imported for it and unloaded afterwards,
one at a time. See ``aliyun.ota`` for the update itself and ``otaboot`` for the switch and the
trial.
"""

import asyncio
import json
import sys

RESET_EXIT = 3  # unix port: the exit status standing for a board reset
_SETTLE_MS = 3000
_PARTS = (
    "aliyun.ota",
    "aliyun.otadl",
    "aliyun.otapkg",
    "aliyun.otaboot",
    "air724.httprange",
    "air724.http",
    "air724.bearer",
)


class OtaAgent:
    """Runs the steps of ``aliyun.ota`` / ``aliyun.otadl`` one at a time; ``idle()`` (from
    ``aliyun.otahook``) once nothing is left to do: no step, no timer, no job, no trial."""

    def __init__(self, session, board, log, state, version: str, trial_ms: int, idle=None):
        self.session = session
        self.board = board
        self.log = log
        if state is None:  # the factory set, or the state as it is on file now
            try:
                with open("ota/state.json") as f:
                    state = json.load(f)
            except (OSError, ValueError):
                state = {"slot": None, "version": version, "status": "confirmed"}
        self.state = state
        self.factory = version
        self.trial_ms = trial_ms
        self.idle = idle
        self.job = None  # the job in progress (aliyun.ota keeps it in ota/job.json too)
        self.pushed = None  # the last push or get_reply, not parsed yet
        self.failures = 0
        self.last_progress = None
        topics = session.topics
        self.prefix = topics.user_prefix[1:-6] if topics is not None else ""  # "pk/dn"
        self._todo = []
        self._task = None
        self._timers = 0

    @property
    def version(self) -> str:
        return self.state.get("version") or self.factory

    def event(self, what: str, payload=None) -> None:
        """From ``aliyun.otahook``: a state of the session, ``push`` or ``trial``."""
        if what == "push":
            self.pushed = payload
            self.spawn("push")
        elif what == "trial":
            self.later(self.trial_ms, "trial")
        elif what == "online":
            # Once the connect's own traffic (first report, NTP) is done and its garbage gone.
            self.later(_SETTLE_MS, "online")
        elif self._task is not None:
            self._task.cancel()  # the bring-up owns the channel now; resumed once online
            self._task = None
            self._todo = []

    def later(self, ms: int, what: str) -> None:
        """Run step ``what`` in ``ms`` if still online, nothing of the update loaded meanwhile."""
        self._timers += 1
        asyncio.create_task(self._later(ms, what))

    async def _later(self, ms: int, what: str) -> None:
        await asyncio.sleep(ms / 1000)
        self._timers -= 1
        if self.session.online or what == "trial":
            self.spawn(what)
        else:
            self._check_idle()

    def _check_idle(self) -> None:
        done = self._task is None and not self._todo and not self._timers
        if done and self.job is None and self.state.get("status") != "trial" and self.idle:
            self.idle()

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
                self._check_idle()

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
