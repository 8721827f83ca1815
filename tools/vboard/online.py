"""``vboard --online``: the virtual board with a local cloud and an emulated module wired to it.

One command gives everything a flashed board needs to come online, all on 127.0.0.1:

- ``aliyun-local serve`` with its state in ``<dir>-online/cloud``: a product and a device
  provisioned on the first run and kept (``<dir>-online/device.json`` names it), so a board
  flashed once keeps its credentials;
- ``air724-sim --pty`` whose real Aliyun host names resolve to that cloud; its pty is the
  board's UART, as ``/dev/ttyUSB0`` would be for a real module on a USB-serial adapter;
- ``<dir>-online/config.json``: the device's triple and ``uart.url`` = the emulator's pty;
  ``<dir>-online/at.log``: the UART's AT transcript.

``Online.start()`` returns the lines to print (the flash and repl commands); ``close()`` stops
both processes. The cloud's message log and the module's events go to ``echo`` as they happen.
"""

import json
import os
import shutil
import signal
from pathlib import Path

from tools.sim import parts, proc


class Online:
    """The cloud, the emulator and the config of one ``vboard --online`` run."""

    def __init__(self, board_dir, echo):
        board_dir = Path(board_dir)
        self.folder = board_dir.with_name(board_dir.name + "-online")
        self.echo = echo
        self.cloud = None
        self.emulator = None
        self.log = None
        self.closing = False  # shutdown noise (the cloud's cancelled log stream) is not shown
        self.config_path = self.folder / "config.json"
        self.transcript = self.folder / "at.log"

    def _line(self, source, stream, text):
        if text and not self.closing:
            self.echo("%-6s %s" % (source, text))

    def start(self) -> dict:
        """Start the cloud and the emulator and write the config; what to tell the user."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cloud = parts.Cloud(self.folder / "cloud", self._line)
        device = self._device()
        info = self.cloud.start()
        argv = [proc.BIN / "aliyun-local", "--state-dir", self.folder / "cloud", "log"]
        self.log = proc.Proc("cloud", argv + ["--follow"], on_line=self._line).start()
        # The UART's AT transcript goes to a file (tail -f it), the cloud's message log here.
        transcript = ["--transcript", str(self.transcript)]
        self.emulator = parts.Emulator(info, args=["--pty", *transcript], on_line=self._line)
        ready = self.emulator.start()
        # Telemetry every 10 s: a console opened at any time soon shows the device's log.
        cfg = parts.device_config(device, uart_url=ready["pty"], telemetry_interval_s=10)
        tmp = self.config_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=1)
        os.chmod(tmp, 0o600)  # it holds the device secret
        os.replace(tmp, self.config_path)
        return {
            "product_key": device["productKey"],
            "device_name": device["deviceName"],
            "uart": ready["pty"],
            "config": self.config_path,
            "transcript": self.transcript,
        }

    def _device(self) -> dict:
        """The device of the previous run (a board flashed then keeps its credentials), or a
        new product and device."""
        saved = self.folder / "device.json"
        if saved.is_file():
            known = json.loads(saved.read_text())
            try:
                return self.cloud.cli("device", "show", known["key"], "--secret")
            except (proc.SimError, KeyError, ValueError):
                pass  # not in the registry any more: provision again
        shutil.rmtree(self.folder / "cloud", ignore_errors=True)
        product = self.cloud.add_product("vboard demo")
        device = self.cloud.add_device(product["productKey"], parts.DEFAULT_IMEI)
        key = "%s/%s" % (device["productKey"], device["deviceName"])
        saved.write_text(json.dumps({"key": key}))
        return device

    def close(self) -> None:
        self.closing = True
        if self.emulator is not None:
            self.emulator.close()
        if self.log is not None:
            self.log.stop(signal.SIGTERM)
        if self.cloud is not None:
            self.cloud.close()


def shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (the line to copy)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def instructions(port: str, parts: dict) -> list:
    """The lines that tell the user how to flash and watch the board."""
    config = shown(parts["config"])
    return [
        "vboard: online mode: a local cloud (product %s, device %s) and an emulated Air724UG "
        "on %s, the board's UART" % (parts["product_key"], parts["device_name"], parts["uart"]),
        "vboard: flash it:  make flash PORT=%s CONFIG=%s" % (port, config),
        "vboard: watch it:  make repl PORT=%s" % port,
        "vboard: the module's AT transcript:  tail -f %s" % shown(parts["transcript"]),
    ]
