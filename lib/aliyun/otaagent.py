"""OTA agent: the small resident half of the update (reference §4.6); ``aliyun.ota`` does
the work, imported only while an update runs.

On every connect it reports the running versions (``/ota/device/inform``: the application as
module ``app``, the module's firmware string as module ``air724``), asks for a pending job
(``/sys/…/thing/ota/firmware/get``) and takes pushes (``/ota/device/upgrade``). A job is kept
in ``ota/job.json`` with the bytes already downloaded, so a download resumes after a link loss,
a reboot or a power cut. A version that was rolled back (``otaboot`` state ``failed``) or is
already running is not installed.

Trial: after an update the new version runs as ``trial`` (see ``otaboot``). If it is online
when ``trial_ms`` has passed since boot it is confirmed and reported; otherwise it is rolled
back (step -1, "not online") and the board resets into the previous set.
"""

import asyncio
import json
import sys

from micropython import const

import otaboot
from atmodem.channel import ticks_diff, ticks_ms

JOB = "ota/job.json"
MODULE = "app"
_PROGRESS_MS = const(5000)  # progress reports at most this often
_RETRY_MS = const(30000)
_FAILURES = const(5)  # download failures in a row, without progress, that end the job
RESET_EXIT = const(3)  # unix port: the exit status standing for a board reset


class OtaAgent:
    def __init__(self, session, board, log, state, version: str, trial_ms: int = 120000):
        self.session = session
        self.board = board
        self.log = log
        self.state = state or {"slot": None, "version": version, "status": "confirmed"}
        if not self.state.get("version"):
            self.state["version"] = version
        self.trial_ms = trial_ms
        self.job = None
        self.failures = 0
        self._prefix = ""  # "pk/dn" once the device name is known
        self._task = None
        self._last = -_PROGRESS_MS
        try:
            with open(JOB) as f:
                self.job = json.load(f)
        except (OSError, ValueError):
            pass

    @property
    def version(self) -> str:
        return self.state["version"]

    def start(self) -> None:
        """Register with the session (call before ``session.run()``)."""
        self.session.on_state(self._on_state)
        self._subscribe()
        if self.state.get("status") == "trial":
            asyncio.create_task(self._trial())

    def _subscribe(self) -> None:
        topics = self.session.topics
        if not self._prefix and topics is not None:
            pk_dn = topics.user_prefix[1:-6]
            self._prefix = pk_dn
            self.session.subscribe("/ota/device/upgrade/" + pk_dn, self._on_push)
            self.session.subscribe(topics.thing_prefix + "ota/firmware/get_reply", self._on_push)

    def _on_state(self, state: str) -> None:
        self._subscribe()
        if state == "online":
            asyncio.create_task(self._online())
        elif self._task is not None:
            self._task.cancel()  # the bring-up owns the channel now; resumed once online
            self._task = None

    async def _online(self) -> None:
        s = self.session
        report = self.state.get("report")
        if report:
            await self.progress(report["step"], report["desc"], True)
            self.state["report"] = None
            _save_quietly(self.state)
        if self.state.get("status") != "trial":
            await self._inform(MODULE, self.version)
        if s.firmware:
            await self._inform("air724", s.firmware)
        body = {"module": MODULE}
        request = '{"id":"%s","version":"1.0","params":%s,"method":"thing.ota.firmware.get"}'
        topic = s.topics.thing_prefix + "ota/firmware/get"
        await s.publish(topic, request % (s.thing.ids(), json.dumps(body)), 1)
        self._run_job()

    async def _inform(self, module: str, version: str) -> None:
        params = json.dumps({"version": version, "module": module})
        body = '{"id":"%s","params":%s}' % (self.session.thing.ids(), params)
        await self.session.publish("/ota/device/inform/" + self._prefix, body, 1)

    async def progress(self, step: int, desc: str = "", force: bool = False) -> None:
        """``/ota/device/progress``: 1..100 at most every few seconds; failures always."""
        now = ticks_ms()
        if not force and step > 0 and ticks_diff(now, self._last) < _PROGRESS_MS:
            return
        self._last = now
        params = json.dumps({"step": str(step), "desc": desc, "module": MODULE})
        body = '{"id":"%s","params":%s}' % (self.session.thing.ids(), params)
        self.log("info" if step > 0 else "warning", "ota: step %d %s" % (step, desc))
        await self.session.publish("/ota/device/progress/" + self._prefix, body, 1)

    # -- jobs --

    def _on_push(self, topic: str, payload) -> None:
        try:
            data = json.loads(bytes(payload))["data"]
            job = {k: data[k] for k in ("url", "size", "sign", "signMethod", "version")}
            job["module"] = data.get("module") or MODULE
        except (ValueError, KeyError, TypeError):
            return  # a get_reply without a job ({}), or not a push
        version = job["version"]
        if job["module"] != MODULE or type(job["size"]) is not int or type(version) is not str:
            self.log("warning", "ota: push refused (module or fields)")
            return
        if version == self.version or version in (self.state.get("failed") or ()):
            self.log("info", "ota: %s not installed (running or rolled back)" % version)
            return
        if self.job is not None and self.job.get("version") == version:
            return  # the same job again (push and get_reply)
        job["got"] = 0
        self.job = job
        self.failures = 0
        self.save_job()
        self.log("info", "ota: job %s, %d B" % (version, job["size"]))
        self._run_job()

    def save_job(self) -> None:
        otaboot.write_json(JOB, self.job)

    def _run_job(self) -> None:
        if self.job is not None and self._task is None and self.session.online:
            self._task = asyncio.create_task(self._work())

    async def _work(self) -> None:
        import aliyun.ota as ota

        try:
            await ota.run(self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            step = getattr(exc, "step", None)
            if step is None:
                self.failures += 1
                self.log("warning", "ota: download stopped: %r" % exc)
                if self.failures < _FAILURES:
                    await asyncio.sleep(_RETRY_MS / 1000)
                    self._task = None
                    self._run_job()
                    return
                step, exc = -2, "download failed: %r" % exc
            await self.progress(step, str(exc)[:80], True)
            self.job = None
            ota.discard()
        finally:
            self.session.modem.release_http()
            _unload(("aliyun.ota", "aliyun.otapkg", "air724.http", "air724.bearer"))
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

    async def _trial(self) -> None:
        await asyncio.sleep(self.trial_ms / 1000)
        state = self.state
        if self.session.online:
            state["status"] = "confirmed"
            state.pop("boots", None)
            otaboot.save(state)
            self.log("info", "ota: %s confirmed" % self.version)
            await self.progress(100, "confirmed", True)
            await self._inform(MODULE, self.version)
            return
        self.state = otaboot.rollback(state, "not online within the trial")
        otaboot.save(self.state)
        self.log("warning", "ota: %s rolled back (not online)" % state["version"])
        await self.reset()


def _save_quietly(state) -> None:
    try:
        otaboot.save(state)
    except OSError:
        pass


def _unload(names) -> None:
    from aliyun.session import unload

    unload(names)
