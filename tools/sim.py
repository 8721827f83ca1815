"""``make sim``: the firmware, the emulated Air724UG and the local cloud, in one log.

``python -m tools.sim`` provisions a demo product and device in a fresh ``aliyun-local`` state
dir, starts the cloud, the emulator (resolving the real Aliyun names to the local cloud) and the
firmware (firmware/main.py on the MicroPython VM with a 128 KB heap, its config.json pointing
the UART at the emulator). Every line of the three goes to one time-stamped log, prefixed with
its source (``device``, ``module``, ``cloud``, ``sim``). Once the device is online the sim
drives the downlink side every few seconds: a message on ``/pk/dn/user/get`` (the example app
echoes it to ``/user/update``) or a ``set-property`` (``LEDSwitch``, ``ReportInterval``, and an
out-of-range value the device must refuse with 460).

It runs until Ctrl-C, or for ``--seconds`` (``SIM_SECONDS``), then prints a summary from the
cloud's message log and the firmware's stats line, and exits 0 only if the device came online
and messages went both ways. Every child process is stopped on every exit path.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

from tools import simkit

SOURCES = ("device", "module", "cloud", "sim")
_COLOURS = {"device": "32", "module": "33", "cloud": "36", "sim": "35"}
_TRANSCRIPT = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (\*\*\*|-->|<--) ?(.*)$")
_PREVIEW = 110
_FIRMWARE_RESTARTS = 3


class Console:
    """One log for every source: ``HH:MM:SS.mmm source | text`` (coloured on a terminal)."""

    def __init__(self, out=None, colour=None, show_at=False):
        self.out = out or sys.stdout
        self.colour = self.out.isatty() if colour is None else colour
        self.show_at = show_at
        self.quiet = set()  # sources muted (the cloud and module while shutting down)
        self._lock = threading.Lock()

    def line(self, source, text, when=None):
        if source in self.quiet:
            return
        now = time.time() if when is None else when
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % (now % 1 * 1000)
        label = "%-6s" % source
        if self.colour:
            label = "\x1b[%sm%s\x1b[0m" % (_COLOURS.get(source, "0"), label)
        with self._lock:
            self.out.write("%s %s | %s\n" % (stamp, label, text))
            self.out.flush()

    def proc_line(self, source, stream, text):
        """``on_line`` of the child processes."""
        if not text.strip():
            return
        if source == "module":
            match = _TRANSCRIPT.match(text)
            if match:
                arrow, body = match.groups()
                if arrow != "***" and not self.show_at:
                    return  # the AT transcript: shown with --at
                if body.startswith("ready: {"):
                    return  # the sim reports the emulator's readiness itself
                text = body if arrow == "***" else arrow + " " + body
        self.line(source, text)


def shorten(topic, pk, dn):
    """A topic without the device's own prefix: ``thing/event/property/post``, ``user/get``."""
    if not topic:
        return "-"
    for prefix in ("/sys/%s/%s/" % (pk, dn), "/%s/%s/" % (pk, dn)):
        if topic.startswith(prefix):
            return topic[len(prefix) :]
    return topic


def preview(text):
    text = (text or "").replace("\n", " ")
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def format_row(row, pk, dn):
    """A cloud message-log row as one line, or None for other devices' rows."""
    if row.get("deviceName") not in (dn, None) or row.get("productKey") not in (pk, None):
        return None
    kind, status, topic = row["type"], row["status"], shorten(row.get("topic"), pk, dn)
    if kind == "status":
        if status in ("online", "offline", "kicked"):
            return "device %s" % status
        if row.get("topic"):
            return "subscribe %s: %s" % (topic, status)
        return "%s: %s" % (status, preview(row.get("content")))
    if kind in ("up", "down"):
        return "%-4s %s %s  [%s]" % (kind, topic, preview(row.get("content")), status)
    return "%s %s" % (kind, preview(row.get("content")))


def summarize(rows, pk, dn, started_ms=None, stats=None):
    """Counts for the summary from the cloud's log rows of one device and the firmware stats."""
    mine = [r for r in rows if r.get("productKey") == pk and r.get("deviceName") == dn]
    online = [r for r in mine if r["type"] == "status" and r["status"] == "online"]
    up = [r for r in mine if r["type"] == "up"]
    down = [r for r in mine if r["type"] == "down"]
    delivered = [r for r in down if r["status"] == "200"]

    def count(items, suffix):
        return sum(1 for r in items if (r.get("topic") or "").endswith(suffix))

    replies = [r for r in up if (r.get("topic") or "").endswith("/property/set_reply")]
    set_replies = [r["status"] for r in replies]
    summary = {
        "online": bool(online),
        "time_to_online_s": None,
        "device_time_to_online_s": None,
        "up": len(up),
        "up_properties": count(up, "/event/property/post"),
        "up_echoes": count(up, "/user/update"),
        "set_replies": set_replies,
        "down": len(delivered),
        "down_undelivered": len(down) - len(delivered),
        "down_user_get": count(delivered, "/user/get"),
        "down_property_set": count(delivered, "/property/set"),
        "reconnects": max(0, len(online) - 1),
        "dropped": None,
    }
    if online and started_ms is not None:
        summary["time_to_online_s"] = round((online[0]["time"] - started_ms) / 1000, 2)
    if stats:
        if stats.get("time_to_online_ms"):
            summary["device_time_to_online_s"] = round(stats["time_to_online_ms"] / 1000, 2)
        summary["dropped"] = stats.get("dropped", 0) + stats.get("echo_dropped", 0)
        summary["reconnects"] = max(summary["reconnects"], stats.get("reconnects", 0))
    # Both ways: the cloud got the device's messages, and the device answered a downlink (an
    # echo of /user/get or a property set_reply) after the cloud delivered it.
    answered = summary["up_echoes"] + len(set_replies)
    summary["ok"] = bool(online) and summary["up"] > 0 and summary["down"] > 0 and answered > 0
    return summary


def render_summary(summary, seconds):
    yes = "yes" if summary["online"] else "NO"
    online = yes
    if summary["time_to_online_s"] is not None:
        online += ", %.2f s after the firmware started" % summary["time_to_online_s"]
    if summary["device_time_to_online_s"] is not None:
        online += " (device's own count: %.2f s)" % summary["device_time_to_online_s"]
    codes = ", ".join(summary["set_replies"]) or "none"
    lines = [
        "summary after %.0f s" % seconds,
        "  online:         " + online,
        "  messages up:    %d (properties %d, echoes %d, property set replies %d: %s)"
        % (
            summary["up"],
            summary["up_properties"],
            summary["up_echoes"],
            len(summary["set_replies"]),
            codes,
        ),
        "  messages down:  %d delivered (user/get %d, property set %d), %d undelivered"
        % (
            summary["down"],
            summary["down_user_get"],
            summary["down_property_set"],
            summary["down_undelivered"],
        ),
        "  reconnects:     %d" % summary["reconnects"],
        "  dropped:        %s"
        % ("unknown (no stats line)" if summary["dropped"] is None else summary["dropped"]),
        "  result:         "
        + (
            "PASS: online, messages both ways"
            if summary["ok"]
            else "FAIL: the device did not come online and exchange messages both ways"
        ),
    ]
    return lines


def downlink_plan(step, interval_s):
    """The ``step``-th downlink: ``("pub", payload)`` or ``("set", params, expected code)``."""
    cycle = (
        ("pub",),
        ("set", {"LEDSwitch": 0}, 200),
        ("set", {"ReportInterval": 1}, 460),  # out of range: the device refuses it
        ("pub",),
        ("set", {"ReportInterval": interval_s}, 200),
        ("pub",),
        ("set", {"LEDSwitch": 1}, 200),
    )
    action = cycle[step % len(cycle)]
    if action[0] == "pub":
        payload = json.dumps({"seq": step, "text": "hello from the cloud"}, separators=(",", ":"))
        return ("pub", payload)
    return action


class Sim:
    def __init__(self, options, console=None):
        self.o = options
        self.console = console or Console(show_at=options.at)
        self.workdir = None
        self.cloud = self.emulator = self.firmware = None
        self.device = None
        self.online = threading.Event()
        self.stop = threading.Event()
        self.started_ms = None
        self.restarts = 0
        self.rows = []

    def say(self, text):
        self.console.line("sim", text)

    # -- start --

    def start(self):
        self.workdir = tempfile.mkdtemp(prefix="air724-sim-")
        on_line = self.console.proc_line
        self.cloud = simkit.Cloud(os.path.join(self.workdir, "cloud"), on_line)
        auth = self.o.auth
        product = self.cloud.add_product("sim demo", dynamic_register=auth == "dynreg")
        pk = product["productKey"]
        self.device = self.cloud.add_device(pk, simkit.DEFAULT_IMEI)
        info = self.cloud.start()
        self.say(
            "cloud ready: product %s, device %s, mqtt %d, mqtts %d, https %d"
            % (
                pk,
                self.device["deviceName"],
                info["ports"]["mqtt"],
                info["ports"]["mqtts"],
                info["ports"]["https"],
            )
        )
        self.cloud.follow(self._row)
        self.emulator = simkit.Emulator(info, self.o.tls, self.o.profile, on_line=on_line)
        ready = self.emulator.start()
        self.say("module ready on tcp://%s (profile %s)" % (ready["tcp"], self.o.profile))
        overrides = {"tls": self.o.tls, "telemetry_interval_s": self.o.interval}
        if self.o.ota:
            overrides["ota_trial_s"] = 10
        if self.o.name_from_imei:
            overrides["device_name"] = ""
        cfg = simkit.device_config(
            self.device,
            auth,
            self.emulator.uart_url,
            product_secret=product["productSecret"],
            **overrides,
        )
        board = os.path.join(self.workdir, "board")
        self.firmware = simkit.Firmware(
            board, cfg, self.o.heapsize, mpy=not self.o.source, on_line=on_line
        ).prepare()
        kind = "source" if self.o.source else ".mpy"
        self.say(
            "firmware (%s, auth %s, tls %s) on micropython -X heapsize=%s"
            % (kind, auth, "on" if self.o.tls else "off", self.o.heapsize)
        )
        self.firmware.start()
        self.started_ms = int(self.firmware.proc.started_at * 1000)

    def _row(self, row):
        self.rows.append(row)
        pk, dn = self.device["productKey"], self.device["deviceName"]
        text = format_row(row, pk, dn)
        if text is None:
            return
        self.console.line("cloud", text, row.get("time", 0) / 1000 or None)
        if row["type"] == "status" and row["status"] == "online":
            self.online.set()
        elif row["type"] == "status" and row["status"] == "offline":
            self.online.clear()

    # -- run --

    def drive(self, deadline):
        """Send downlinks while online until the deadline (None: until interrupted)."""
        step = 0
        while True:
            wait = self.o.every
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            if self.stop.wait(wait):
                return
            self._watch_firmware()
            if self.online.is_set():
                if self.o.ota and step == 1:
                    self._ota_demo()
                self._downlink(step)
                step += 1

    def _watch_firmware(self):
        """A firmware that exited was reset (unix port): start it again, like a board reboots."""
        proc = self.firmware.proc
        if proc.running():
            return
        if self.restarts >= _FIRMWARE_RESTARTS:
            raise simkit.SimError("the firmware keeps exiting (status %s)" % proc.popen.poll())
        self.restarts += 1
        self.say(
            "firmware exited (status %s): restarting it (%d/%d)"
            % (proc.popen.poll(), self.restarts, _FIRMWARE_RESTARTS)
        )
        self.firmware.start()

    def _ota_demo(self):
        """SIM_OTA=1: build version 1.1.0 of the application, add it, deploy it (OTA)."""
        from tools.cloud.ota import build_package
        from tools.otademo import make_version

        pk, dn = self.device["productKey"], self.device["deviceName"]
        build = make_version(os.path.join(self.workdir, "build-1.1.0"), "1.1.0")
        pkg = os.path.join(self.workdir, "app-1.1.0.bin")
        manifest = build_package(build, "1.1.0", pkg, simkit.ROOT / "build")
        self.say("ota: package 1.1.0, %d B, %d of %d files sent"
                 % (manifest["size"], manifest["changed"], len(manifest["files"])))  # fmt: skip
        self.cloud.cli("ota", "add", pk, pkg, "--version", "1.1.0")
        self.cloud.cli("ota", "deploy", pk, "1.1.0", "--device", dn)
        self.say("ota: 1.1.0 deployed to %s (aliyun-local ota status shows the job)" % dn)

    def _downlink(self, step):
        pk, dn = self.device["productKey"], self.device["deviceName"]
        action = downlink_plan(step, self.o.interval)
        try:
            if action[0] == "pub":
                topic = "/%s/%s/user/get" % (pk, dn)
                self.say("pub %s %s" % (shorten(topic, pk, dn), action[1]))
                self.cloud.pub(topic, action[1])
                return
            params, expected = action[1], action[2]
            shown = " ".join("%s=%s" % item for item in params.items())
            reply = self.cloud.set_property(dn, **params)
            code = reply.get("code")
            note = "" if code == expected else " (expected %d)" % expected
            self.say("set-property %s -> set_reply %s%s" % (shown, code, note))
        except simkit.SimError as exc:
            self.say("downlink failed: %s" % exc)

    def run(self):
        """Start everything, drive it, stop it, print the summary; the exit status."""
        begin = time.monotonic()
        deadline = begin + self.o.seconds if self.o.seconds else None
        interrupted = False
        try:
            self.start()
            self.say(
                "running %s; Ctrl-C stops"
                % ("for %d s" % self.o.seconds if self.o.seconds else "until interrupted")
            )
            self.drive(deadline)
        except KeyboardInterrupt:
            interrupted = True
        except simkit.SimError as exc:
            self.say("error: %s" % exc)
        finally:
            stats = self.shutdown()
        summary = self.summary(stats)
        for line in render_summary(summary, time.monotonic() - begin):
            print(line, flush=True)
        if interrupted and not summary["online"]:
            return 130
        return 0 if summary["ok"] else 1

    def shutdown(self):
        """Stop the firmware first (its stats line), then the emulator and the cloud."""
        stats = None
        try:
            if self.firmware is not None and self.firmware.proc is not None:
                self.firmware.stop()
                stats = self.firmware.stats()
        finally:
            self.console.quiet.update(("cloud", "module"))
            for part in (self.emulator, self.cloud):
                if part is not None:
                    part.close()
        return stats

    def summary(self, stats):
        pk = self.device["productKey"] if self.device else ""
        dn = self.device["deviceName"] if self.device else ""
        rows = self.rows
        if self.cloud is not None and self.cloud.info is not None:
            try:
                rows = self.cloud.rows()  # the whole log, from the state dir
            except simkit.SimError as exc:
                self.say("cloud log unavailable (%s): using the followed rows" % exc)
        return summarize(rows, pk, dn, self.started_ms, stats)

    def cleanup(self):
        if self.workdir and not self.o.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir:
            print("kept %s (config.json there holds the device secret)" % self.workdir)


def _env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def build_parser():
    p = argparse.ArgumentParser(prog="python -m tools.sim", description=__doc__.split("\n")[0])
    p.add_argument(
        "--seconds",
        type=int,
        default=_env_int("SIM_SECONDS", 0),
        help="stop after N seconds (default $SIM_SECONDS; 0: until Ctrl-C)",
    )
    p.add_argument(
        "--auth",
        choices=("direct", "http", "dynreg"),
        default=os.environ.get("SIM_AUTH", "direct"),
        help="device authentication (default $SIM_AUTH or direct)",
    )
    p.add_argument(
        "--no-tls",
        dest="tls",
        action="store_false",
        help="plain MQTT over TCP (securemode=3) instead of TLS",
    )
    p.add_argument(
        "--profile",
        choices=("fast", "realistic"),
        default=os.environ.get("SIM_PROFILE", "fast"),
        help="emulator timing profile (default $SIM_PROFILE or fast)",
    )
    p.add_argument(
        "--interval",
        type=int,
        default=10,
        help="telemetry_interval_s of the generated config.json (default 10)",
    )
    p.add_argument(
        "--every",
        type=float,
        default=5.0,
        help="seconds between downlinks once online (default 5)",
    )
    p.add_argument(
        "--heapsize",
        default=simkit.FIRMWARE_HEAP,
        help="MicroPython heap (default %s)" % simkit.FIRMWARE_HEAP,
    )
    p.add_argument(
        "--source",
        action="store_true",
        help="run the firmware from .py sources instead of the mpy-cross build",
    )
    p.add_argument(
        "--name-from-imei",
        action="store_true",
        help="leave device_name empty: the firmware uses the module's IMEI",
    )
    p.add_argument(
        "--at",
        action="store_true",
        default=bool(os.environ.get("SIM_AT")),
        help="show the AT transcript of the UART too (or $SIM_AT=1)",
    )
    p.add_argument(
        "--ota",
        action="store_true",
        default=bool(os.environ.get("SIM_OTA")),
        help="once online, update the device to a version 1.1.0 over the air (or $SIM_OTA=1)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p


def main(argv=None):
    options = build_parser().parse_args(argv)
    if options.auth == "http" and not options.tls:
        raise SystemExit("--auth http connects over TLS only")

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    sim = Sim(options)
    try:
        return sim.run()
    finally:
        sim.cleanup()


if __name__ == "__main__":
    sys.exit(main())
