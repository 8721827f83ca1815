"""The control channel of a running emulator (``air724-sim ctl …``).

A unix socket (default, in a private temporary directory) or a loopback TCP port. The protocol
is one JSON object per line each way: ``{"do": "<fault or command>", "params": {...}}`` →
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Besides every fault kind, the
commands are ``status`` (module state), ``set`` (dialect options), ``dialect`` and ``faults``.
"""

import asyncio
import json
import socket

from .dialect import OPTIONS
from .faults import FAULTS, FaultError, normalize


def parse_address(text):
    """``unix:PATH`` or ``tcp://HOST:PORT`` → ("unix", path) / ("tcp", (host, port))."""
    if text.startswith("unix:"):
        return "unix", text[5:]
    if text.startswith("tcp://"):
        host, _, port = text[6:].rpartition(":")
        return "tcp", (host.strip("[]") or "127.0.0.1", int(port))
    raise ValueError(f"control address must be unix:PATH or tcp://HOST:PORT, got {text!r}")


class ControlServer:
    def __init__(self, modem, faults):
        self.modem = modem
        self.faults = faults
        self._server = None
        self.address = None

    async def start(self, address):
        kind, where = parse_address(address)
        if kind == "unix":
            self._server = await asyncio.start_unix_server(self._client, path=where)
            self.address = f"unix:{where}"
        else:
            self._server = await asyncio.start_server(self._client, where[0], where[1])
            host, port = self._server.sockets[0].getsockname()[:2]
            self.address = f"tcp://{host}:{port}"

    async def stop(self):
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader, writer):
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    reply = self.handle(request.get("do", ""), request.get("params") or {})
                except (ValueError, AttributeError) as err:
                    reply = {"ok": False, "error": str(err)}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def handle(self, command, params):
        command = normalize(command)
        m = self.modem
        try:
            if command == "status":
                return {"ok": True, "state": m.state()}
            if command == "dialect":
                return {"ok": True, "dialect": m.dialect.as_dict()}
            if command == "set":
                for name, value in params.items():
                    m.dialect.set(name, value)
                return {"ok": True, "dialect": m.dialect.as_dict()}
            if command in ("faults", "help"):
                return {
                    "ok": True,
                    "faults": {
                        k: {"help": f.help, "params": list(f.params)} for k, f in FAULTS.items()
                    },
                    "commands": ["status", "set", "dialect", "faults"],
                    "dialect": [o.name for o in OPTIONS],
                }
            result = self.faults.apply(command, params)
            return {"ok": True, "done": command, **result}
        except (FaultError, ValueError) as err:
            return {"ok": False, "error": str(err)}


def request(address, command, params=None, timeout=10.0):
    """Send one control request to a running emulator and return its reply (blocking)."""
    kind, where = parse_address(address)
    family = (
        socket.AF_UNIX
        if kind == "unix"
        else socket.AF_INET6
        if ":" in where[0]
        else (socket.AF_INET)
    )
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(where)
        sock.sendall((json.dumps({"do": command, "params": params or {}}) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
