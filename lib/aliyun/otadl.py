"""OTA download, imported by ``aliyun.otaagent`` while it runs (the smallest part of the update
that stays loaded during a download); ``aliyun.ota`` checks and installs the package after.

1. Space: ``os.statvfs`` must show room for the package and the installed set (about twice
   its size), else step -4.
2. Download over HTTPS through the module's HTTP client, one ``BREAK``/``BREAKEND`` range of
   ``CHUNK`` bytes per request (air724-at.md §6.4), written to ``ota/pkg.bin`` as it is read.
   After each complete chunk ``ota/job.json`` records the bytes held; the next attempt (after a
   link loss, a reboot, a power cut) starts at the last complete chunk. Progress 1..99, at most
   every ``PROGRESS_MS``. A failed attempt is tried again (5 times without progress, then -2).
"""

import asyncio
import gc
import json
import os
from time import ticks_diff, ticks_ms

from micropython import const

DIR = "ota"
PKG = "ota/pkg.bin"
JOB = "ota/job.json"
MODULE = "app"
CHUNK = 8192  # bytes per ranged request; the module buffers up to 300 KB (§6.4)
PROGRESS_MS = 5000
_MARGIN = const(8192)
_BEARER_MS = const(60000)
_GET_MS = const(120000)
_RETRY_MS = const(30000)
_MIN_FREE = const(4096)  # free heap below which a chunk waits (a retry, later)
_FAILURES = const(5)  # failed attempts in a row, without progress, that end a job


async def step(agent) -> None:
    if agent.job is not None and agent.session.online:
        gc.collect()
        await _attempt(agent)


async def progress(agent, step: int, desc: str = "", force: bool = False) -> None:
    """``/ota/device/progress``: 1..100 at most every ``PROGRESS_MS``; failures always."""
    now = ticks_ms()
    last = agent.last_progress
    if not force and step > 0 and last is not None and ticks_diff(now, last) < PROGRESS_MS:
        return
    agent.last_progress = now
    params = json.dumps({"step": str(step), "desc": desc, "module": MODULE})
    body = '{"id":"%s","params":%s}' % (agent.session.thing.ids(), params)
    agent.log("info" if step > 0 else "warning", "ota: step %d %s" % (step, desc))
    await agent.session.publish("/ota/device/progress/" + agent.prefix, body, 1)


def save_job(agent) -> None:
    """``ota/job.json`` replaced atomically (as ``otaboot.write_json``, without loading it)."""
    try:
        os.mkdir(DIR)
    except OSError:
        pass  # exists
    with open(JOB + ".tmp", "w") as f:
        json.dump(agent.job, f)
    os.rename(JOB + ".tmp", JOB)


async def _attempt(agent) -> None:
    """Run the job; a fault of the package ends it, a failed download is tried again."""
    try:
        await run(agent)
        agent.spawn("install")  # aliyun.ota, once this module and the HTTP client are gone
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        step = getattr(exc, "step", None)
        _release(agent.session.modem)
        if step is None:
            agent.failures += 1
            agent.log("warning", "ota: download stopped: %r" % exc)
            if agent.failures < _FAILURES:
                agent.later(_RETRY_MS, "download")  # or at the next connect
                return
            step, exc = -2, "download failed: %r" % exc
        await progress(agent, step, str(exc)[:80], True)
    agent.job = None
    discard()


def discard() -> None:
    """Forget the job: its package and its job file."""
    for path in (PKG, JOB):
        try:
            os.remove(path)
        except OSError:
            pass


def free_bytes(path: str = ".") -> int:
    """Free space of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st[0] * st[4]


def resume_offset(got: int, total: int) -> int:
    """Where a download restarts: the last complete chunk the job file and the package file
    both hold (the file may be shorter after a power cut, or longer than the job says)."""
    held = min(got, _size_of(PKG))
    return total if held >= total else held // CHUNK * CHUNK


async def run(agent) -> None:
    """Check the space, then download what ``agent.job`` still lacks (see module doc)."""
    job = agent.job
    size = job["size"]
    try:
        os.mkdir(DIR)
    except OSError:
        pass  # exists
    got = resume_offset(job["got"], size)
    if free_bytes() + _size_of(PKG) < 2 * size + _MARGIN:
        from aliyun.otapkg import PackageError

        raise PackageError(-4, "no room: %d B package" % size)
    if got < size:
        await _download(agent, job, got)


async def _download(agent, job, got: int) -> None:
    size = job["size"]
    modem = agent.session.modem
    await modem.bearer.ensure(agent.session.config["apn"], _BEARER_MS)
    modem.release_http()  # the bearer stays open; its code leaves RAM for the download
    from aliyun import unload

    unload(("air724.bearer",))
    http = _client(modem)
    agent.log("info", "ota: download %s from byte %d of %d" % (job["version"], got, size))
    while got < size:
        end = min(got + CHUNK, size)
        gc.collect()  # the chunk's reads need small blocks of RAM; never starve the AT reader
        free = gc.mem_free() if hasattr(gc, "mem_free") else _MIN_FREE
        agent.log("debug", "ota: chunk at %d, heap free %d" % (got, free))
        if free < _MIN_FREE:
            raise MemoryError("%d B free" % free)
        await _fetch(http, job["url"], got, end)
        got = job["got"] = end
        agent.failures = 0
        save_job(agent)
        await progress(agent, max(1, got * 99 // size))
    http = None
    _release(modem)
    unload(("air724.httprange", "air724.http"))  # RAM for the check and the install


async def _fetch(http, url: str, start: int, end: int) -> None:
    """Bytes ``start`` to ``end`` (exclusive) of ``url`` into PKG at ``start``."""
    with open(PKG, "r+b" if start else "wb") as f:
        f.seek(start)
        written = [0]

        def sink(piece):
            f.write(piece)
            written[0] += len(piece)

        status = await http.fetch(url, start, end, sink, _GET_MS)
    if status not in (200, 206) or written[0] != end - start:
        raise OSError("range %d-%d: HTTP %d, %d B" % (start, end - 1, status, written[0]))


def _client(modem):
    """The ranged HTTP client on the modem's channel (its +HTTPACTION URC registered)."""
    from air724.httprange import RangeClient

    return RangeClient(modem.channel)


def _release(modem) -> None:
    modem.release_http()
    modem.channel.remove_urc(b"+HTTPACTION:")  # the RangeClient's, if one was made


def _size_of(path: str) -> int:
    try:
        return os.stat(path)[6]
    except OSError:
        return 0
