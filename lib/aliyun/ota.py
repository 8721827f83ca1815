"""OTA worker: download a job's package in ranged chunks, verify it, install it, switch.

Imported by ``aliyun.otaagent`` only while an update runs, and unloaded afterwards.

1. Space: ``os.statvfs`` must show room for the package and the installed set (about twice
   its size), else step -4.
2. Download over HTTPS through the module's HTTP client, one ``BREAK``/``BREAKEND`` range of
   ``CHUNK`` bytes per request (air724-at.md §6.4), each written to ``ota/pkg.bin`` as it is
   read. After each complete chunk ``ota/job.json`` records the bytes held; a new attempt (after
   a link loss, a reboot, a power cut) starts again at the last complete chunk.
3. Verify the whole package against the push's ``sign`` (MD5 or SHA-256), else step -3.
4. Install the new file set into the free slot, every file checked against its SHA-256
   (``aliyun.otapkg``), else step -3.
5. Switch: the new ``otaboot`` state (``trial``) is written last, in one rename; then reset.
"""

import os

from micropython import const

import otaboot
from aliyun import otapkg
from aliyun.otapkg import PackageError

PKG = "ota/pkg.bin"
CHUNK = 8192  # bytes per ranged request; the module buffers up to 300 KB (§6.4)
_MARGIN = const(8192)
_BEARER_MS = const(60000)
_GET_MS = const(120000)


def free_bytes(path: str = ".") -> int:
    """Free space of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st[0] * st[4]


def resume_offset(got: int, total: int) -> int:
    """Where a download restarts: the last complete chunk the job file and the package file
    both hold (the file may be shorter after a power cut, or longer than the job says)."""
    held = min(got, _size_of(PKG))
    return total if held >= total else held // CHUNK * CHUNK


def discard() -> None:
    """Forget the job: its package and its job file."""
    from aliyun.otaagent import JOB

    for path in (PKG, JOB):
        try:
            os.remove(path)
        except OSError:
            pass


async def run(agent) -> None:
    """Download, verify and install ``agent.job``, then switch and reset (see module doc)."""
    job = agent.job
    size = job["size"]
    otapkg.make_dirs(PKG)
    got = resume_offset(job["got"], size)
    if free_bytes() + _size_of(PKG) < 2 * size + _MARGIN:
        raise PackageError(-4, "no room: %d B package" % size)
    if got < size:
        modem = agent.session.modem
        await modem.bearer.ensure(agent.session.config["apn"], _BEARER_MS)
        http = modem.http
        agent.log("info", "ota: download %s from byte %d of %d" % (job["version"], got, size))
        while got < size:
            end = min(got + CHUNK, size)
            await _fetch(http, job["url"], got, end)
            got = job["got"] = end
            agent.save_job()
            await agent.progress(max(1, got * 99 // size))
    check = otapkg.check_sign
    check(PKG, job["signMethod"], job["sign"])
    agent.log("info", "ota: package verified (%s)" % job["signMethod"])
    await _switch(agent, job["version"])


async def _fetch(http, url: str, start: int, end: int) -> None:
    """Bytes ``start`` to ``end`` (exclusive) of ``url`` into PKG at ``start``."""
    with open(PKG, "r+b" if start else "wb") as f:
        f.seek(start)
        written = [0]

        def sink(piece):
            f.write(piece)
            written[0] += len(piece)

        params = (("BREAK", start), ("BREAKEND", end - 1))
        status, _ = await http.request(0, url, None, (), _GET_MS, params=params, sink=sink)
    if status not in (200, 206) or written[0] != end - start:
        raise OSError("range %d-%d: HTTP %d, %d B" % (start, end - 1, status, written[0]))


async def _switch(agent, version: str) -> None:
    state = agent.state
    current = state.get("slot")
    slot = "s1" if current == "s0" else "s0"
    base = otaboot.DIR + "/" + slot
    running = None if current is None else otaboot.DIR + "/" + current
    count = otapkg.install(PKG, version, base, running)
    new = {"slot": slot, "version": version, "status": "trial", "boots": 0,
           "prev": [current, state["version"]], "failed": state.get("failed") or [],
           "report": None}  # fmt: skip
    otaboot.save(new)  # the switch: the one write that selects the new set
    discard()
    agent.log("info", "ota: %d files installed in %s, trial of %s" % (count, base, version))
    await agent.reset()


def _size_of(path: str) -> int:
    try:
        return os.stat(path)[6]
    except OSError:
        return 0
