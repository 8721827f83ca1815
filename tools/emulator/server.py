"""Serve one emulated module on a pseudo-terminal and/or loopback TCP; report readiness.

Every endpoint is wired to the same UART: what the module sends goes to all of them, what any of
them sends reaches the module. When everything listens, one JSON line is printed on stdout (and
written to ``--ready-file``): ``{"ready": true, "pty": ..., "tcp": ..., "ctl": ..., "pid": ...}``.
"""

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import tty
from pathlib import Path

from .control import ControlServer
from .dialect import Dialect
from .faults import FaultEngine
from .modem import Modem
from .transcript import Transcript
from .uart import Uart

_PTY_BACKLOG = 1 << 20  # bytes kept for a pty nobody reads; older ones are dropped (a UART
# has no buffer at all)


class PtyEndpoint:
    """The module's UART as a pseudo-terminal (raw mode: no echo, no CR/LF translation)."""

    def __init__(self, uart):
        self.uart = uart
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # keep the slave open: the pty stays usable between clients
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._pending = bytearray()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._readable)
        self._writing = False

    def _readable(self):
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        self.uart.receive(data)

    def write(self, data):
        self._pending += data
        if len(self._pending) > _PTY_BACKLOG:
            del self._pending[: len(self._pending) - _PTY_BACKLOG]
        self._flush()

    def _flush(self):
        while self._pending:
            try:
                sent = os.write(self.master, self._pending)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._pending.clear()
                break
            if sent == 0:
                if not self._writing:
                    self._loop.add_writer(self.master, self._flush)
                    self._writing = True
                return
            del self._pending[:sent]
        if self._writing:
            self._loop.remove_writer(self.master)
            self._writing = False

    def close(self):
        self._loop.remove_reader(self.master)
        if self._writing:
            self._loop.remove_writer(self.master)
        os.close(self.master)
        os.close(self._slave)


class TcpEndpoint:
    """One TCP client connected to the UART."""

    def __init__(self, writer):
        self.writer = writer

    def write(self, data):
        if not self.writer.is_closing():
            self.writer.write(data)


class TcpServer:
    def __init__(self, uart):
        self.uart = uart
        self._server = None
        self._writers = set()
        self.address = None

    async def start(self, host, port):
        self._server = await asyncio.start_server(self._client, host, port)
        bound = self._server.sockets[0].getsockname()
        host_text = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.address = f"{host_text}:{bound[1]}"

    async def _client(self, reader, writer):
        endpoint = TcpEndpoint(writer)
        self.uart.attach(endpoint)
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                self.uart.receive(data)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.uart.detach(endpoint)
            self._writers.discard(writer)
            writer.close()

    async def stop(self):
        for writer in list(self._writers):
            writer.close()
        if self._server:
            self._server.close()
            await self._server.wait_closed()


def _colour(mode, stream):
    if mode == "always":
        return True
    if mode == "never":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


async def serve(options):
    """Run the emulator until SIGINT/SIGTERM. ``options`` comes from the CLI (see cli.py)."""
    loop = asyncio.get_running_loop()
    stream, own_stream = _open_transcript(options.transcript)
    transcript = None
    if stream is not None:
        transcript = Transcript(
            stream, _colour(options.color, stream), options.show_secrets, loop=loop
        )
    log = transcript.note if transcript else (lambda text: None)
    faults = FaultEngine(log)
    dialect = Dialect(options.dialect)
    uart = Uart(options.baud, transcript)
    modem = Modem(uart, dialect, options.profile, options.identity, options.network, faults, log)
    faults.m = modem
    control = ControlServer(modem, faults)
    ctl_dir, pty, tcp, link = None, None, None, None
    try:
        if options.pty:
            pty = PtyEndpoint(uart)
            uart.attach(pty)
            if options.link:
                link = _make_link(options.link, pty.path)
        if options.listen:
            tcp = TcpServer(uart)
            await tcp.start(*options.listen)
        ctl_address = options.ctl
        if ctl_address is None:
            ctl_dir = tempfile.mkdtemp(prefix="air724-sim-")
            ctl_address = f"unix:{os.path.join(ctl_dir, 'ctl.sock')}"
        await control.start(ctl_address)
        uart.start()
        modem.start()
        faults.schedule(options.events)
        ready = {
            "ready": True,
            "pty": pty.path if pty else None,
            "link": link,
            "tcp": tcp.address if tcp else None,
            "ctl": control.address,
            "pid": os.getpid(),
            "profile": options.profile_name,
            "baud": options.baud,
        }
        _announce(ready, options.ready_file)
        log(f"ready: {json.dumps(ready)}")
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        faults.close()
        await modem.stop()
        await uart.stop()
        await control.stop()
        if tcp:
            await tcp.stop()
        if pty:
            pty.close()
        if link:
            Path(link).unlink(missing_ok=True)
        if ctl_dir:
            shutil.rmtree(ctl_dir, ignore_errors=True)
        if transcript:
            transcript.close()
        if own_stream:
            stream.close()
    return 0


def _open_transcript(target):
    if target in (None, "none"):
        return None, False
    if target == "-":
        return sys.stderr, False
    return open(target, "a", encoding="utf-8", buffering=1), True  # noqa: SIM115


def _make_link(path, target):
    link = Path(path)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise SystemExit(f"--link {path}: exists and is not a symlink")
    link.symlink_to(target)
    return str(link)


def _announce(ready, ready_file):
    line = json.dumps(ready)
    if ready_file:
        tmp = Path(f"{ready_file}.tmp")
        tmp.write_text(line + "\n", encoding="utf-8")
        tmp.replace(ready_file)  # atomic: a waiter never sees half a file
    print(line, flush=True)  # last: whoever reads this line finds the file too
