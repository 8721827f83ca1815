"""The board's console modes as a small state machine: friendly REPL, paste, raw, raw-paste.

MicroPython's pyexec has four input modes, switched by control keys:

======== ============================== =============================================
state    enter with                     leave with
======== ============================== =============================================
friendly reset (the default), Ctrl-B    Ctrl-A (raw), Ctrl-E (paste), Ctrl-D (reset)
paste    Ctrl-E at the friendly prompt  Ctrl-D (run), Ctrl-C (cancel): friendly
raw      Ctrl-A                         Ctrl-B (friendly), Ctrl-E A Ctrl-A (raw-paste)
raw-     Ctrl-E A Ctrl-A in raw         Ctrl-D (run), Ctrl-C (cancel): raw
paste
======== ============================== =============================================

``ConsoleModes.feed(byte)`` hands one console byte to the handler of the current state. It
needs from its host (tools/vboard/host.py): ``_write(bytes)``, ``_run_code(kind, source,
single=False)``, ``_soft_reset()``, ``_complete(word)`` and ``banner``. The raw/friendly choice
survives a soft reset (``reset(hard=False)``), as pyexec's does; a hard reset goes friendly.
"""

import os

from tools.vboard.editor import (
    CTRL_A,
    CTRL_B,
    CTRL_C,
    CTRL_D,
    CTRL_E,
    ENTER,
    TAB,
    LineEditor,
    continue_with_input,
)

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_BANNER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
WINDOW = 512  # raw-paste flow-control window (a board's is 128)

FRIENDLY, PASTE, RAW, RAW_PASTE = "friendly", "paste", "raw", "raw-paste"


class ConsoleModes:
    """The console input modes of one board (see the module docstring)."""

    def __init__(self, host):
        self.host = host
        self.write = host._write
        self.editor = LineEditor(host._write)
        self.state = FRIENDLY
        self.cont_line = False  # friendly: a compound statement continues ("... ")
        self.buf = bytearray()  # paste text, the raw line or the raw-paste text
        self.room = WINDOW  # raw-paste: bytes left before the next flow-control ack
        self._handlers = {
            FRIENDLY: self._friendly,
            PASTE: self._paste,
            RAW: self._raw,
            RAW_PASTE: self._raw_paste,
        }

    @property
    def raw(self) -> bool:
        """pyexec's raw mode (also while raw-pasting): no main.py at a soft reset."""
        return self.state in (RAW, RAW_PASTE)

    def feed(self, c: int) -> None:
        self._handlers[self.state](c)

    def reset(self, hard: bool) -> None:
        self.state = RAW if self.raw and not hard else FRIENDLY
        self.buf = bytearray()

    def enter(self) -> None:
        """The REPL's greeting once the board has booted."""
        if self.raw:
            self._go_raw()
        else:
            self._friendly_banner()

    def prompt(self, after_raw: bool) -> None:
        """The prompt once code has run (``after_raw``: code of the raw REPL)."""
        if after_raw:
            self.write(b">")
        else:
            self.cont_line = False
            self.editor.start(">>> ")

    # -- friendly and paste ----------------------------------------------------------------

    def _friendly_banner(self) -> None:
        self.state = FRIENDLY
        self.write(self.host.banner + b'\r\nType "help()" for more information.\r\n')
        self.prompt(after_raw=False)

    def _friendly(self, c: int) -> None:
        r = self.editor.feed(c)
        if r is None:
            return
        if r == TAB:
            self.host._complete(self.editor.completion_word())
        elif self.cont_line:
            self._continued(r)
        elif r == CTRL_A:
            self.write(b"\r\n")
            self._go_raw()
        elif r == CTRL_B:
            self.write(b"\r\n")
            self._friendly_banner()
        elif r == CTRL_C:
            self.write(b"\r\n")
            self.editor.start(">>> ")
        elif r == CTRL_D:
            self.write(b"\r\n")
            self.host._soft_reset()
        elif r == CTRL_E:
            self.write(PASTE_BANNER)
            self.state, self.buf = PASTE, bytearray()
        elif not self.editor.text:
            self.editor.start(">>> ")
        elif r == ENTER:
            self._line_done()

    def _continued(self, r: int) -> None:
        """A key that ends a line of a compound statement."""
        if r == CTRL_C:
            self.write(b"\r\n")
            self.prompt(after_raw=False)
        elif r == CTRL_D:
            self.host._run_code("friendly", self.editor.text, single=True)
        elif r == ENTER:
            self._line_done()

    def _line_done(self) -> None:
        text = self.editor.text
        if continue_with_input(text):
            self.editor.text += "\n"
            self.cont_line = True
            self.editor.start("... ", keep=True)
        else:
            self.host._run_code("friendly", text, single=True)

    def _paste(self, c: int) -> None:
        if c == CTRL_C:
            self.write(b"\r\n")
            self.state = FRIENDLY
            self.editor.start(">>> ")
        elif c == CTRL_D:
            self.write(b"\r\n")
            source, self.state, self.buf = bytes(self.buf), FRIENDLY, bytearray()
            self.host._run_code("friendly", source.decode("utf-8", "surrogateescape"))
        else:
            self.buf.append(c)
            self.write(b"\r\n=== " if c == 13 else bytes((c,)))

    def completed(self, names: str) -> None:
        """The VM's answer to a Tab: complete the word, or list the candidates."""
        word = self.editor.completion_word()
        i = len(word)
        while i and (word[i - 1].isalnum() or word[i - 1] in "_."):
            i -= 1
        stem = word[i:].rpartition(".")[2]
        found = [n for n in names.split("\n") if n]
        if not found and i == 0 and word and "import ".startswith(word):
            found = ["import "]
        if found:
            common = os.path.commonprefix(found)
            if len(found) == 1 or len(common) > len(stem):
                self.editor.insert(common[len(stem) :])
            else:
                self.write(b"\r\n" + _columns(found) + b"\r\n")
                self.editor.redraw_line()

    # -- raw and raw-paste -----------------------------------------------------------------

    def _go_raw(self) -> None:
        self.state, self.buf = RAW, bytearray()
        self.write(RAW_BANNER + b">")

    def _raw(self, c: int) -> None:
        line = self.buf
        if c == CTRL_A and len(line) == 2 and line[0] == CTRL_E:
            self.buf = bytearray()
            if line[1] == ord("A"):  # raw-paste request: accepted, with the window size
                self.write(b"R\x01" + WINDOW.to_bytes(2, "little") + b"\x01")
                self.state, self.room = RAW_PASTE, WINDOW
            else:
                self.write(b"R\x00>")
        elif c == CTRL_A:
            self._go_raw()
        elif c == CTRL_B:
            self.write(b"\r\n")
            self._friendly_banner()
        elif c == CTRL_C:
            self.buf = bytearray()
        elif c == CTRL_D:
            self.write(b"OK")
            source, self.buf = bytes(line), bytearray()
            if not source:
                self.write(b"\r\n")
                self.host._soft_reset()
            else:
                self.host._run_code("raw", source.decode("utf-8", "surrogateescape"))
        else:
            line.append(c)

    def _raw_paste(self, c: int) -> None:
        if c == CTRL_C:
            self.state, self.buf = RAW, bytearray()
            self.write(b"\x04\x04KeyboardInterrupt: \r\n\x04>")
        elif c == CTRL_D:
            self.write(b"\x04")
            source, self.state, self.buf = bytes(self.buf), RAW, bytearray()
            self.host._run_code("raw", source.decode("utf-8", "surrogateescape"))
        else:
            self.buf.append(c)
            self.room -= 1
            if not self.room:
                self.write(b"\x01")
                self.room = WINDOW


def _columns(names) -> bytes:
    # The board's layout: names in 16-character slots, lines of at most 64 characters.
    lines, line = [], ""
    for name in names:
        gap = -len(line) % 16
        if gap < 2:
            gap += 16
        if line and len(line) + gap + len(name) <= 64:
            line += " " * gap + name
        else:
            if line:
                lines.append(line)
            line = name
    lines.append(line)
    return "\r\n".join(lines).encode()
