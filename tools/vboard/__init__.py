"""Virtual board: the MicroPython unix port on a pty, so mpremote, ``make flash`` and
``make repl`` work with no hardware.

``vboard [--dir .vboard] [--heapsize 128k] [--ready-file FILE] [--log FILE] [--online]`` prints
the port (the pty path) as its first stdout line once the VM is up, writes it to ``--ready-file``
too,
and serves until SIGINT/SIGTERM. The folder is the board's ``/``: ``/lib`` is on ``sys.path``,
boot.py and main.py run at every reset. SIGUSR1 prints the host's Python stack to stderr (to see
where a host that does not stop is waiting). ``--online`` also starts a local cloud and an
emulated module wired to the board and prints the line that flashes a config that works on it
(tools/vboard/online.py).
"""

import argparse
import faulthandler
import os
import re
import signal
import sys

from tools.sim.board import FIRMWARE_HEAP
from tools.vboard.host import VirtualBoard

__all__ = ["VirtualBoard", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vboard", description="A MicroPython board on a pty: the unix-port VM."
    )
    parser.add_argument("--dir", default=".vboard", help="the board's / (default: .vboard)")
    # The firmware's heap today (README "Memory"): a flashed board must come online as is.
    parser.add_argument(
        "--heapsize", default=FIRMWARE_HEAP, help="VM heap, e.g. 256k (default %s)" % FIRMWARE_HEAP
    )
    parser.add_argument("--ready-file", help="write the port here once it is ready")
    parser.add_argument("--log", help="append all console output to this file")
    parser.add_argument(
        "--online",
        action="store_true",
        help="also start a local cloud and an emulated Air724UG on a pty wired to the board, "
        "and write a config.json that works on it (in DIR-online/)",
    )
    return parser


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _announce(args, port: str, parts: "dict | None") -> None:
    """The port on stdout (and in --ready-file), then what it is and, online, what to do."""
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(port + "\n")
        os.replace(tmp, args.ready_file)
    print(port, flush=True)
    _say(
        f"vboard: MicroPython (unix port, heap {args.heapsize}) on {port}, "
        f"board folder {args.dir}/; Ctrl-C stops it"
    )
    if parts is not None:
        from tools.vboard.online import instructions

        for line in instructions(port, parts):
            _say(line)


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d+[kKmM]?", args.heapsize):
        parser.error("--heapsize: a size such as 128k, 1m or 65536")
    online, parts = None, None
    if args.online:
        from tools.vboard.online import Online

        online = Online(args.dir, echo=_say)
        try:
            parts = online.start()
        except Exception as exc:  # noqa: BLE001 - a part did not start: say which, stop all
            online.close()
            _say("vboard: --online: %s" % exc)
            return 1

    def ready(port: str) -> None:
        _announce(args, port, parts)

    board = VirtualBoard(args.dir, heapsize=args.heapsize, log=args.log, on_ready=ready)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: board.stop())
    faulthandler.register(signal.SIGUSR1)
    board.open()
    try:
        board.serve()
    finally:
        if online is not None:
            online.close()
        if args.ready_file:
            try:
                os.unlink(args.ready_file)
            except OSError:
                pass
    if board.failed:
        _say(f"vboard: {board.failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
