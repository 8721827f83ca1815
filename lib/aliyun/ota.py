"""OTA steps (reference §4.6), imported by ``aliyun.otaagent`` for each and unloaded after;
the download and the switch are ``aliyun.otadl``'s.

- ``online``: send a rollback's failure report, report the versions (``/ota/device/inform``:
  the application as module ``app`` unless it is on trial, the module's firmware string as
  ``air724``), ask for a job (``thing/ota/firmware/get``), resume a job kept in ``ota/job.json``.
- ``push``: a job from ``/ota/device/upgrade`` or a ``get_reply``; not taken for the running
  version, for one that was rolled back (never installed again) or for another module.
- ``trial``: the trial time is over: online, the new version is confirmed and reported;
  otherwise it is rolled back (step -1) and the board resets into the previous set.
- ``install``: the package is downloaded: check its ``sign`` (MD5 or SHA-256) and install its
  file set into the free slot, each file checked against its SHA-256 (``aliyun.otapkg``; else
  step -3), write the new ``otaboot`` state (``trial``) last, in one rename (the switch), reset.
"""

import json

from aliyun import otaboot

JOB = "ota/job.json"  # as aliyun.otadl (imported only for what needs it)
MODULE = "app"


async def step(agent, what: str) -> None:
    if what == "online":
        await _online(agent)
    elif what == "push":
        _take(agent)
    elif what == "trial":
        await _trial(agent)
    elif what == "install":
        await _install(agent)
        return
    if agent.job is not None and agent.session.online:
        agent.spawn("download")


async def _online(agent) -> None:
    s = agent.session
    state = agent.state
    report = state.get("report")
    if report:
        from aliyun.otadl import progress

        await progress(agent, report["step"], report["desc"], True)
        state["report"] = None
        otaboot.save(state)
    if state.get("status") != "trial":
        await inform(agent, MODULE, agent.version)
    firmware = s.kept.firmware  # the module's, once the bring-up read it
    if firmware:
        await inform(agent, "air724", firmware)
    request = '{"id":"%s","version":"1.0","params":{"module":"app"},'
    request += '"method":"thing.ota.firmware.get"}'
    await s.publish(s.topics.thing_prefix + "ota/firmware/get", request % s.thing.ids(), 1)
    if agent.job is None:
        try:
            with open(JOB) as f:
                agent.job = json.load(f)
        except (OSError, ValueError):
            pass


async def inform(agent, module: str, version: str) -> None:
    params = json.dumps({"version": version, "module": module})
    body = '{"id":"%s","params":%s}' % (agent.session.thing.ids(), params)
    await agent.session.publish("/ota/device/inform/" + agent.prefix, body, 1)


def _take(agent) -> None:
    """Take the job of ``agent.pushed`` (a push or a get_reply), if it is one to install."""
    try:
        data = json.loads(agent.pushed)["data"]
        job = {k: data[k] for k in ("url", "size", "sign", "signMethod", "version")}
        job["module"] = data.get("module") or MODULE
    except (ValueError, KeyError, TypeError):
        return  # a get_reply without a job ({}), or not a push
    finally:
        agent.pushed = None
    version = job["version"]
    if job["module"] != MODULE or type(job["size"]) is not int or type(version) is not str:
        agent.log("warning", "ota: push refused (module or fields)")
        return
    if version == agent.version or version in (agent.state.get("failed") or ()):
        agent.log("info", "ota: %s not installed (running or rolled back)" % version)
        return
    if agent.job is not None and agent.job.get("version") == version:
        return  # the same job again (push and get_reply)
    job["got"] = 0
    agent.job = job
    agent.failures = 0
    otaboot.write_json(JOB, job)
    agent.log("info", "ota: job %s, %d B" % (version, job["size"]))


async def _trial(agent) -> None:
    state = agent.state
    if state.get("status") != "trial":
        return
    if agent.session.online:
        state["status"] = "confirmed"
        state.pop("boots", None)
        otaboot.save(state)
        agent.log("info", "ota: %s confirmed" % agent.version)
        from aliyun.otadl import progress

        await progress(agent, 100, "confirmed", True)
        await inform(agent, MODULE, agent.version)
        return
    agent.state = otaboot.rollback(state, "not online within the trial")
    otaboot.save(agent.state)
    agent.log("warning", "ota: %s rolled back (not online)" % state["version"])
    await agent.reset()


async def _install(agent) -> None:
    """Verify the downloaded package, install it into the free slot, switch, reset."""
    from aliyun import otapkg
    from aliyun.otadl import PKG, discard, progress

    job = agent.job
    state = agent.state
    current = state.get("slot")
    slot = "s1" if current == "s0" else "s0"
    base = otaboot.DIR + "/" + slot
    try:
        otapkg.check_sign(PKG, job["signMethod"], job["sign"])
        agent.log("info", "ota: package verified (%s)" % job["signMethod"])
        running = None if current is None else otaboot.DIR + "/" + current
        count = otapkg.install(PKG, job["version"], base, running)
    except otapkg.PackageError as exc:
        await progress(agent, exc.step, exc.desc[:80], True)
        agent.job = None
        discard()
        return
    new = {"slot": slot, "version": job["version"], "status": "trial", "boots": 0,
           "prev": [current, agent.version], "failed": state.get("failed") or [],
           "report": None}  # fmt: skip
    otaboot.save(new)  # the switch: the one write that selects the new set
    discard()
    agent.job = None
    agent.log("info", "ota: %d files installed in %s, trial of %s" % (count, base, job["version"]))
    await agent.reset()
