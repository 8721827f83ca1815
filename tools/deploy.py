"""Flash the firmware onto a MicroPython board (or a virtual board) over mpremote.

``python -m tools.deploy flash --port PORT [--config config.json] [--reset hard|soft|none]``

1. validates ``config.json`` with firmware/config.py (refuses, naming the field, if it is missing
   or invalid; never prints a value);
2. builds lib/ and firmware/ with mpy-cross (tools.mpy_build);
3. copies, over mpremote's serial transport: lib/ as .mpy into ``/lib``, firmware/boot.py and
   main.py as source into ``/``, the rest of firmware/ as .mpy into ``/`` (``boards/`` kept), and
   the config as ``/config.json``. Files whose SHA-256 on the board already matches are skipped
   (one exec hashes them all); a ``.py`` on the board that would shadow a deployed ``.mpy`` is
   removed;
4. resets the board (hard by default: ``machine.reset()``), so boot.py and main.py run.

It first stops the firmware with a Ctrl-C, as a user would, and does not soft-reset the board:
the firmware then keeps a started watchdog fed (boards/mcu.py), and the board cannot reset in
the middle of the copy (an RP2040's watchdog outlives a soft reset; the timer does not).

Exit status: 0 flashed, 1 board or transport error, 2 configuration refused.
"""

import argparse
import ast
import hashlib
import importlib.util
import sys
from pathlib import Path

import tools  # noqa: F401 - installs the ``micropython`` stand-in
from tools import mpy_build

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ON_BOARD = ("boot.py", "main.py")  # a board runs only these two as .py
CHUNK = 512  # bytes per write exec


class FlashError(Exception):
    """Flashing failed; ``status`` is the exit status (2: configuration refused)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _load_config_module(root: Path):
    """firmware/config.py of ``root``, loaded on the host (the board's own schema)."""
    spec = importlib.util.spec_from_file_location(
        "_firmware_config", root / "firmware" / "config.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_config(path, root: Path = ROOT) -> dict:
    """Validate ``path`` with the firmware's own schema; FlashError(status 2) names the field."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if (root / "firmware" / "config.example.json").is_file():
            hint = " (start from firmware/config.example.json)"
        raise FlashError(f"{path} not found: the board needs a config.json{hint}", 2)
    module = _load_config_module(root)
    try:
        return module.load(str(path))
    except module.ConfigError as exc:
        # The message names the field and the rule, never the value.
        raise FlashError(f"{path}: {exc.field}: {str(exc).split(': ', 2)[-1]}", 2) from None


ONLINE_HINT = (
    "`make vboard ONLINE=1` starts a virtual board with a local cloud and an emulated module and "
    "prints a config that works on it"
)


def _unix_parse_url(root: Path, config_module):
    """boards/unix.py's own ``parse_url`` (None when ``root`` has no unix board module)."""
    path = root / "firmware" / "boards" / "unix.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_firmware_board_unix", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def parse_url(url):
        saved = sys.modules.get("config")
        sys.modules["config"] = config_module  # the board imports ConfigError from ``config``
        try:
            return module.parse_url(url)
        finally:
            if saved is None:
                sys.modules.pop("config", None)
            else:
                sys.modules["config"] = saved

    return parse_url


def board_problem(cfg: dict, platform: str, root: Path, exists) -> "str | None":
    """Why ``cfg`` cannot work on a board whose ``sys.platform`` is ``platform`` (None if it
    can). The unix port (a virtual board) reaches its module only through ``uart.url``: it must
    parse, a device path must exist on the board (``exists(path)``) and a TCP address must
    accept a connection."""
    if platform not in ("linux", "darwin"):
        return None
    config_module = _load_config_module(root)
    parse_url = _unix_parse_url(root, config_module)
    if parse_url is None:
        return None
    url = (cfg.get("uart") or {}).get("url") or ""
    if not url:
        return (
            "uart.url: empty, but this board is the MicroPython unix port (a virtual board): it "
            "reaches its module only through uart.url, tcp://HOST:PORT (air724-sim --listen) or "
            "a device path (/dev/ttyUSB0, air724-sim --pty); " + ONLINE_HINT
        )
    try:
        address = parse_url(url)
    except config_module.ConfigError as exc:
        return "uart.url: " + str(exc).split(": ", 2)[-1]
    if address is None:
        if not exists(url):
            return "uart.url: %s does not exist on the board (no such device); %s" % (
                url,
                ONLINE_HINT,
            )
        return None
    import socket

    try:
        socket.create_connection(address, timeout=3).close()
    except OSError as exc:
        return "uart.url: nothing accepts a connection at %s (%s): start the emulator first" % (
            url,
            exc.strerror or exc,
        )
    return None


def plan(root: Path = ROOT, build: Path | None = None) -> list[tuple[Path, str]]:
    """Build, then list (local file, board path) for lib/ and firmware/, in copy order."""
    build = build or root / "build"
    outputs = mpy_build.build(root, build)
    files = []
    for mpy in outputs:
        top, *parts = mpy.relative_to(build).parts
        rel = Path(*parts)
        if top == "lib":
            files.append((mpy, "/lib/" + rel.as_posix()))
        elif rel.with_suffix(".py").as_posix() not in SOURCE_ON_BOARD:
            files.append((mpy, "/" + rel.as_posix()))
    for name in SOURCE_ON_BOARD:
        source = root / "firmware" / name
        if source.is_file():
            files.append((source, "/" + name))
    return files


_HASH_CODE = """import hashlib,binascii
def _h(p):
 try:
  f=open(p,'rb')
 except OSError:
  return None
 h=hashlib.sha256();b=bytearray(256)
 while 1:
  n=f.readinto(b)
  if not n:break
  h.update(memoryview(b)[:n])
 f.close()
 return binascii.hexlify(h.digest()).decode()
print(repr([_h(p) for p in %r]))
del _h
"""

# After the Ctrl-C, free what the stopped firmware holds (no soft reset, see flash()): its event
# loop's tasks, its modules and the REPL's globals (main.py runs as __main__). A parked
# watchdog's timer keeps its own references.
_RELEASE_CODE = """import sys,gc
try:
 import asyncio;asyncio.new_event_loop();asyncio.core.cur_task=None
except (ImportError,AttributeError):
 pass
for _n in [n for n in sys.modules if n.split('.')[0] in %r]:
 del sys.modules[_n]
for _k in [k for k in globals() if k[:2]!='__' and k!='gc']:
 del globals()[_k]
gc.collect()
del gc
"""


def module_names(remote_paths: list[str]) -> list[str]:
    """The import names of the deployed modules: /lib/aliyun/session.mpy -> aliyun.session."""
    names = []
    for path in remote_paths:
        stem, dot, ext = path.rpartition(".")
        if not dot or ext not in ("py", "mpy"):
            continue
        parts = stem.removeprefix("/lib/").lstrip("/").split("/")
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            names.append(".".join(parts))
    return names


_MKDIR_CODE = """import os
for d in %r:
 try:
  os.mkdir(d)
 except OSError:
  pass
"""


def _board_hashes(transport, paths: list[str]) -> list:
    """SHA-256 (hex) of each path on the board, None where missing; all None without hashlib."""
    from mpremote.transport import TransportExecError

    try:
        out = transport.exec(_HASH_CODE % (paths,))
    except TransportExecError as exc:
        if "ImportError" in exc.error_output or "AttributeError" in exc.error_output:
            return [None] * len(paths)  # no hashlib.sha256 on this port: copy everything
        raise
    return ast.literal_eval(out.decode().strip())


def _board_exists(transport, path: str) -> bool:
    code = "import os\ntry:\n os.stat(%r);print(1)\nexcept OSError:\n print(0)" % path
    return transport.exec(code).decode().strip() == "1"


def _stop_firmware(transport, remote_paths: list[str], log) -> None:
    """Ctrl-C stops the firmware (main.py hands a started watchdog to a timer), then the raw
    REPL and the stopped firmware's RAM freed. No soft reset: on an RP2040 it would stop that
    timer but not the watchdog, which would then reset the board in the middle of the copy."""
    from mpremote.transport import TransportExecError

    transport.enter_raw_repl(soft_reset=False)
    tops = sorted({name.split(".")[0] for name in module_names(remote_paths)})
    try:
        transport.exec(_RELEASE_CODE % (tops,))
    except TransportExecError as exc:
        if "MemoryError" not in exc.error_output:
            raise
        # Too little RAM left even for that: a clean VM, at the watchdog's risk (an RP2040
        # resets 8.4 s after a soft reset if its firmware had started the watchdog).
        log("flash: the stopped firmware leaves no RAM: soft reset")
        transport.enter_raw_repl(soft_reset=True)


def _check_board(transport, cfg: dict, config, root: Path, log) -> None:
    """Refuse (FlashError, status 2) a config that cannot work on the board found."""
    platform = transport.exec("import sys;print(sys.platform)").decode().strip()
    problem = board_problem(cfg, platform, root, lambda p: _board_exists(transport, p))
    if problem:
        transport.exit_raw_repl()  # the board is left at its REPL, nothing copied
        raise FlashError(f"{config}: {problem}", 2)
    log(f"flash: {config}: works on this board ({platform})")


def flash(port: str, config, root: Path = ROOT, reset: str = "hard", log=print) -> dict:
    """Flash ``root``'s lib/, firmware/ and ``config`` onto ``port``; return the counts."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    cfg = check_config(config, root)
    log(f"flash: {config}: valid")
    files = plan(root) + [(Path(config), "/config.json")]
    local = [hashlib.sha256(path.read_bytes()).hexdigest() for path, _ in files]
    remote_paths = [remote for _, remote in files]
    shadows = [p[:-4] + ".py" for p in remote_paths if p.endswith(".mpy")]
    try:
        transport = SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise FlashError(f"cannot open {port}: {exc}") from None
    try:
        _stop_firmware(transport, remote_paths, log)
        _check_board(transport, cfg, config, root, log)
        hashes = _board_hashes(transport, remote_paths + shadows)
        board, shadowed = hashes[: len(files)], hashes[len(files) :]
        todo = [i for i, digest in enumerate(local) if board[i] != digest]
        dirs = sorted({remote_paths[i].rsplit("/", 1)[0] for i in todo} - {""})
        if dirs:
            # Every folder and its parents, shallowest first: /lib, /lib/aliyun, /boards...
            parts = set()
            for d in dirs:
                segs = d.strip("/").split("/")
                parts.update("/" + "/".join(segs[:n]) for n in range(1, len(segs) + 1))
            transport.exec(_MKDIR_CODE % (sorted(parts, key=lambda d: d.count("/")),))
        for i in todo:
            path, remote = files[i]
            log(f"  copy {remote}")
            transport.fs_writefile(remote, path.read_bytes(), chunk_size=CHUNK)
        removed = [p for p, digest in zip(shadows, shadowed, strict=True) if digest is not None]
        for remote in removed:
            log(f"  remove {remote} (it would shadow the .mpy)")
            transport.fs_rmfile(remote)
        log(
            f"flash: {len(files)} files on {port}: {len(todo)} copied, "
            f"{len(files) - len(todo)} unchanged"
        )
        if reset == "hard":
            log("flash: hard reset")
            transport.exec_raw_no_follow("import time,machine;time.sleep_ms(100);machine.reset()")
        else:
            transport.exit_raw_repl()
            if reset == "soft":
                log("flash: soft reset")
                transport.serial.write(b"\x04")
    except TransportError as exc:
        raise FlashError(f"{port}: {exc}") from None
    finally:
        transport.close()
    return {"files": len(files), "copied": len(todo), "removed": len(removed)}


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (shorter messages)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.deploy", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("flash", help="build, copy lib/, firmware/ and config.json, reset")
    cmd.add_argument("--port", required=True, help="serial port: /dev/ttyUSB0, a vboard's pty")
    cmd.add_argument("--config", default=_shown(ROOT / "config.json"), help="default: config.json")
    cmd.add_argument("--reset", choices=("hard", "soft", "none"), default="hard")
    args = parser.parse_args(argv)
    if not args.port:
        parser.error("--port is empty (make flash PORT=/dev/ttyUSB0)")
    try:
        flash(args.port, args.config, reset=args.reset)
    except FlashError as exc:
        verb = "refused" if exc.status == 2 else "failed"
        print(f"flash: {verb}: {exc}", file=sys.stderr)
        return exc.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
