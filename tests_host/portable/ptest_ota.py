"""OTA on the device: package reader and verifier, boot-time selection and rollback, the
worker's ranged download with resume, and what a power cut at each step leaves behind.

The tests work in a scratch directory (the device's filesystem root): ``ota/`` is the update's
own, ``lib/`` and ``x.py`` stand for the factory set.
"""

import binascii
import hashlib
import json
import os
import sys

from ptest import raises

from aliyun import ota, otaboot, otadl, otapkg
from aliyun.otaagent import OtaAgent
from aliyun.otadl import JOB
from aliyun.otapkg import PackageError

SCRATCH = "ptest_ota_tmp"


def sha(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def md5_hex(data):
    from aliyun.md5 import MD5

    return binascii.hexlify(MD5(data).digest()).decode()


def package(version, entries):
    """Package bytes; ``entries``: (kind, path, data) with kind F (sent) or C (copied)."""
    out = [("AOTA1 %s %d\n" % (version, len(entries))).encode()]
    for kind, path, data in entries:
        out.append(("%s %d %s %s\n" % (kind, len(data), sha(data), path)).encode())
        if kind == "F":
            out.append(data)
    out.append(b"E\n")
    return b"".join(out)


def write(path, data):
    otapkg.make_dirs(path)
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Scratch:
    """Run the block in an empty scratch directory; factory files ``lib/a/m.mpy``, ``app.mpy``."""

    def __enter__(self):
        self.cwd = os.getcwd()
        otapkg.remove_tree(SCRATCH)
        os.mkdir(SCRATCH)
        os.chdir(SCRATCH)
        write("lib/a/m.mpy", b"factory module")
        write("app.mpy", b"factory app")
        self.path = list(sys.path)
        return self

    def __exit__(self, *exc):
        os.chdir(self.cwd)
        sys.path[:] = self.path
        otapkg.remove_tree(SCRATCH)
        return False


NEW = [("F", "lib/a/m.mpy", b"new module" * 300), ("C", "firmware/app.mpy", b"factory app")]


# -- the package ------------------------------------------------------------------------------


def test_install_writes_new_files_and_copies_unchanged_ones():
    with Scratch():
        write("ota/pkg.bin", package("1.1.0", NEW))
        assert otapkg.install("ota/pkg.bin", "1.1.0", "ota/s0", None) == 2
        assert read("ota/s0/lib/a/m.mpy") == b"new module" * 300
        assert read("ota/s0/app.mpy") == b"factory app"  # firmware/x lives at the set's root
        write("ota/s0/stale.mpy", b"old")  # a slot is emptied before an install
        write("ota/pkg.bin", package("1.2.0", [("C", "lib/a/m.mpy", b"new module" * 300)]))
        assert otapkg.install("ota/pkg.bin", "1.2.0", "ota/s1", "ota/s0") == 1
        otapkg.install("ota/pkg.bin", "1.2.0", "ota/s0", "ota/s1")
        assert not exists("ota/s0/stale.mpy")


def test_every_file_digest_and_the_header_are_checked():
    with Scratch():
        blob = bytearray(package("1.1.0", NEW))
        blob[500] ^= 1  # one byte of the new module
        write("ota/pkg.bin", blob)
        with raises(PackageError, "digest mismatch: lib/a/m.mpy") as err:
            otapkg.install("ota/pkg.bin", "1.1.0", "ota/s0", None)
        assert err.value.step == -3
        write("ota/pkg.bin", package("1.1.0", [("C", "firmware/app.mpy", b"other app")]))
        with raises(PackageError, "digest mismatch: firmware/app.mpy"):
            otapkg.install("ota/pkg.bin", "1.1.0", "ota/s0", None)  # the running set differs
        write("ota/pkg.bin", package("1.1.0", [("C", "lib/none.mpy", b"")]))
        with raises(PackageError, "not in the running set"):
            otapkg.install("ota/pkg.bin", "1.1.0", "ota/s0", None)
        write("ota/pkg.bin", package("1.1.0", NEW))
        with raises(PackageError, "package holds version 1.1.0"):
            otapkg.install("ota/pkg.bin", "1.2.0", "ota/s0", None)
        write("ota/pkg.bin", package("1.1.0", NEW)[:-40])
        with raises(PackageError, "bad package"):
            otapkg.install("ota/pkg.bin", "1.1.0", "ota/s0", None)
        write("ota/pkg.bin", b"PK\x03\x04 not ours\n")
        with raises(PackageError, "bad package: header"):
            otapkg.install("ota/pkg.bin", "1.1.0", "ota/s0", None)


def test_paths_that_leave_the_slot_or_are_not_code_are_refused():
    digest = "0" * 64
    for path in ("lib/../../x.mpy", "/lib/x.mpy", "lib/x.txt", "boot.py", "lib//x.mpy",
                 "lib/x y.mpy", "lib/" + "x" * 100 + ".mpy"):  # fmt: skip
        with raises(PackageError, "bad package: entry"):
            otapkg.parse_entry(("F 1 %s %s" % (digest, path)).encode())
    with raises(PackageError):
        otapkg.parse_entry(b"F -1 " + digest.encode() + b" lib/x.mpy")
    with raises(PackageError):
        otapkg.parse_entry(b"X 1 " + digest.encode() + b" lib/x.mpy")
    assert otapkg.parse_entry(b"C 5 " + digest.encode() + b" firmware/boards/unix.mpy\n") == (
        "C", 5, digest, "firmware/boards/unix.mpy")  # fmt: skip


def test_sign_is_md5_or_sha256_in_any_case():
    with Scratch():
        blob = package("1.1.0", NEW)
        write("ota/pkg.bin", blob)
        otapkg.check_sign("ota/pkg.bin", "Md5", md5_hex(blob).upper())
        otapkg.check_sign("ota/pkg.bin", "MD5", md5_hex(blob))
        otapkg.check_sign("ota/pkg.bin", "SHA256", sha(blob).upper())
        otapkg.check_sign("ota/pkg.bin", "Sha256", sha(blob))
        with raises(PackageError, "sign mismatch") as err:
            otapkg.check_sign("ota/pkg.bin", "Md5", sha(blob)[:32])
        assert err.value.step == -3
        with raises(PackageError, "unknown signMethod"):
            otapkg.check_sign("ota/pkg.bin", "crc32", "0")


def test_md5_without_hashlib_md5_uses_the_pure_python_one():
    from ptest import fresh_import

    class NoMd5:
        sha256 = hashlib.sha256

    plain = fresh_import("aliyun.otapkg", {"hashlib": NoMd5})
    h = plain.new_hash("md5")
    h.update(b"abc")
    assert binascii.hexlify(h.digest()) == b"900150983cd24fb0d6963f7d28e17f72"  # RFC 1321


# -- boot selection ---------------------------------------------------------------------------


def test_no_state_or_a_bad_one_boots_the_factory_set():
    with Scratch():
        assert otaboot.select() is None
        write(otaboot.STATE, b'{"slot": "s0", "version": "1.1')  # torn write: not JSON
        assert otaboot.select() is None
        write(otaboot.STATE, b'{"slot": "../x"}')
        assert otaboot.select() is None
        assert "ota/s0" not in sys.path


def test_trial_boots_once_then_a_reset_rolls_back_for_good():
    with Scratch():
        state = {"slot": "s1", "version": "1.2.0", "status": "trial", "boots": 0,
                 "prev": ["s0", "1.1.0"], "failed": [], "report": None}  # fmt: skip
        otaboot.save(state)
        chosen = otaboot.select()
        assert chosen["boots"] == 1 and sys.path[:2] == ["ota/s1/lib", "ota/s1"]
        sys.path[:2] = []
        chosen = otaboot.select()  # booted again before it was confirmed: it failed
        assert chosen["slot"] == "s0" and chosen["version"] == "1.1.0"
        assert chosen["status"] == "confirmed" and chosen["failed"] == ["1.2.0"]
        assert chosen["report"] == {"step": -1, "desc": "reset before the trial ended",
                                    "version": "1.2.0"}  # fmt: skip
        assert sys.path[:2] == ["ota/s0/lib", "ota/s0"]
        assert otaboot.load() == chosen  # and it stays so
        state = otaboot.rollback(dict(state, prev=[None, "1.0.0"]), "x")
        assert state["slot"] is None and state["version"] == "1.0.0"  # back to the factory


def test_a_power_cut_before_the_rename_keeps_the_old_state():
    with Scratch():
        otaboot.save({"slot": "s0", "version": "1.1.0", "status": "confirmed"})
        write(otaboot.STATE + ".tmp", b'{"slot": "s1", "vers')  # the cut came mid-write
        assert otaboot.select()["version"] == "1.1.0"
        otaboot.save({"slot": "s1", "version": "1.2.0", "status": "confirmed"})
        assert otaboot.load()["slot"] == "s1" and not exists(otaboot.STATE + ".tmp")


# -- the worker -------------------------------------------------------------------------------


class FakeHTTP:
    """The module's HTTP client over ``blob``: ranges, a cut after ``cut`` bytes, a count."""

    def __init__(self, blob, cut=None):
        self.blob = blob
        self.cut = cut
        self.served = 0
        self.ranges = []

    async def fetch(self, url, start, end, sink, timeout):
        end -= 1  # inclusive, as BREAKEND
        self.ranges.append((start, end))
        data = self.blob[start : end + 1]
        if self.cut is not None and self.served + len(data) > self.cut:
            sink(data[: self.cut - self.served])  # part of it reached the file
            self.served = self.cut
            self.cut = None
            raise OSError("601 network")
        for i in range(0, len(data), 700):
            sink(data[i : i + 700])
        self.served += len(data)
        return 206


class FakeModem:
    def __init__(self, http):
        self.http = http
        self.bearer = self
        self.channel = self

    def remove_urc(self, prefix):
        pass

    async def ensure(self, apn, timeout):
        return "10.0.0.2"

    def release_http(self):
        pass


class FakeSession:
    def __init__(self, http):
        self.modem = FakeModem(http)
        self.config = {"apn": ""}
        self.online = True
        self.sent = []
        self.outbox = self
        self.topics = None
        self.thing = self
        self.kept = self
        self.firmware = "AirM2M_V409"

    def ids(self):
        return str(len(self.sent) + 1)

    def peek(self):
        return None

    async def publish(self, topic, payload, qos=0):
        self.sent.append((topic, json.loads(payload)))
        return True


class ResetError(Exception):
    pass


otadl._client = lambda modem: modem.http  # the fake stands for the ranged client


def agent_for(http, state=None):
    session = FakeSession(http)
    agent = OtaAgent(session, None, lambda level, text: None, state, "1.0.0", 120000)
    agent.prefix = "pk/dn"
    agent.spawn = lambda what: None

    async def reset():
        raise ResetError()

    agent.reset = reset
    return agent


async def update(agent):
    """The download step, then the install step (as the agent runs them)."""
    await otadl.run(agent)
    await ota._install(agent)


def sent(agent, topic_part):
    return [body["params"] for topic, body in agent.session.sent if topic_part in topic]


def push_to(agent, body):
    agent.pushed = json.dumps(body).encode()
    ota._take(agent)


def job_for(blob, method="Md5"):
    sign = md5_hex(blob) if method == "Md5" else sha(blob)
    return {"url": "https://x/p", "size": len(blob), "sign": sign, "signMethod": method,
            "version": "1.1.0", "module": "app", "got": 0}  # fmt: skip


def steps(agent):
    return [int(body["params"]["step"]) for topic, body in agent.session.sent]


async def test_download_resumes_at_the_last_chunk_after_a_cut():
    with Scratch():
        blob = package("1.1.0", NEW)  # about 3 KB: chunks of 1 KB
        otadl.CHUNK = 1024
        try:
            http = FakeHTTP(blob, cut=1500)
            agent = agent_for(http)
            agent.job = job_for(blob)
            otadl.save_job(agent)
            with raises(OSError, "601"):
                await otadl.run(agent)
            assert agent.job["got"] == 1024 and json.loads(read(JOB))["got"] == 1024
            agent = agent_for(http)  # as after a reboot: the job comes from its file
            agent.job = json.loads(read(JOB))
            with raises(ResetError):
                await update(agent)
        finally:
            otadl.CHUNK = 8192
        n = len(blob)
        again = [(s, min(s + 1023, n - 1)) for s in range(1024, n, 1024)]
        assert n > 3072 and http.ranges == [(0, 1023), (1024, 2047)] + again
        assert http.served == len(blob) + 1500 - 1024  # the cut chunk is fetched again, only it
        state = otaboot.load()
        assert state["slot"] == "s0" and state["status"] == "trial" and state["boots"] == 0
        assert state["prev"] == [None, "1.0.0"]
        assert read("ota/s0/lib/a/m.mpy") == NEW[0][2]
        assert not exists(otadl.PKG) and not exists(JOB)
        assert 0 < steps(agent)[0] <= 99


async def test_a_bad_sign_or_a_bad_file_leaves_the_running_set_in_force():
    with Scratch():
        blob = package("1.1.0", NEW)
        agent = agent_for(FakeHTTP(blob))
        agent.job = dict(job_for(blob), sign="00" * 16)
        await update(agent)  # refused and reported
        assert sent(agent, "progress")[-1]["step"] == "-3"
        assert sent(agent, "progress")[-1]["desc"] == "sign mismatch"
        assert otaboot.load() is None and agent.job is None and not exists(otadl.PKG)
        bad = bytearray(blob)
        bad[600] ^= 0x55
        agent = agent_for(FakeHTTP(bytes(bad)))
        agent.job = job_for(bytes(bad), "SHA256")  # the sign fits what came: the digest not
        await update(agent)
        assert sent(agent, "progress")[-1]["step"] == "-3"
        assert sent(agent, "progress")[-1]["desc"] == "digest mismatch: lib/a/m.mpy"
        assert otaboot.load() is None and not exists(JOB)


async def test_no_room_is_refused_with_step_minus_4():
    with Scratch():
        agent = agent_for(FakeHTTP(b""))
        agent.job = dict(job_for(b"x"), size=otadl.free_bytes() + 1)
        with raises(PackageError, "no room") as err:
            await otadl.run(agent)
        assert err.value.step == -4


async def test_a_power_cut_during_the_install_boots_the_old_set_and_installs_again():
    with Scratch():
        blob = package("1.1.0", NEW)
        http = FakeHTTP(blob)
        otaboot.save({"slot": "s1", "version": "1.0.5", "status": "confirmed", "failed": []})
        write("ota/s1/lib/a/m.mpy", b"factory module")
        write("ota/s1/app.mpy", b"factory app")
        agent = agent_for(http, otaboot.load())
        agent.job = job_for(blob)
        saved = otapkg._copy
        calls = []

        def cut(src, dest, size):
            calls.append(dest)
            if len(calls) == 2:
                raise KeyboardInterrupt  # stands for the power going away here
            return saved(src, dest, size)

        otapkg._copy = cut
        try:
            with raises(KeyboardInterrupt):
                await update(agent)
        finally:
            otapkg._copy = saved
        assert otaboot.select()["slot"] == "s1"  # the state file was not touched: old set
        agent = agent_for(http, otaboot.load())  # the job file says the package is complete
        agent.job = json.loads(read(JOB))
        assert agent.job["got"] == len(blob)
        with raises(ResetError):
            await update(agent)
        assert len(http.ranges) == len(blob) // otadl.CHUNK + 1  # nothing downloaded again
        assert otaboot.load()["slot"] == "s0" and otaboot.load()["prev"] == ["s1", "1.0.5"]


async def test_agent_takes_a_push_once_and_never_a_rolled_back_version():
    with Scratch():
        state = {"slot": None, "version": "1.0.0", "status": "confirmed", "failed": ["1.1.0"]}
        agent = agent_for(FakeHTTP(b""), state)
        agent.session.online = False  # no worker started here
        push = {"code": "1000", "data": job_for(b"abc"), "id": 1, "message": "success"}
        push_to(agent, push)
        assert agent.job is None  # rolled back once: never again
        push["data"]["version"] = "1.2.0"
        push_to(agent, push)
        assert agent.job["version"] == "1.2.0" and json.loads(read(JOB))["got"] == 0
        agent.job["got"] = 2
        push_to(agent, push)  # the same job (push and get_reply)
        assert agent.job["got"] == 2
        push_to(agent, {"code": 200, "data": {}, "id": "3"})  # get_reply: nothing to do
        agent.pushed = b"not json"
        ota._take(agent)
        assert agent.job["version"] == "1.2.0"
        await otadl.progress(agent, 10)
        await otadl.progress(agent, 20)  # too soon after the last one: not sent
        await otadl.progress(agent, -2, "download failed")  # failures always are
        assert steps(agent) == [10, -2]
