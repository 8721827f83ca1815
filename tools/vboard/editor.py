"""Line editing of the virtual board's friendly REPL, as a MicroPython board does it.

Printable ASCII is inserted at the cursor; backspace removes one character (four in leading
indentation); arrows, Home/End and Delete move and edit; up/down walk the history; Tab indents
after whitespace or asks for completion; a new continuation line is auto-indented like the
previous one, one level deeper after a colon. ``continue_with_input`` is the board's rule for
when the friendly REPL asks for another line.
"""

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
ENTER = 13
TAB = 9
HISTORY = 8
_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")


def continue_with_input(text: str) -> bool:
    """True if the REPL needs another line for ``text`` (open block, bracket, quote, ``\\``)."""
    if not text:
        return False
    word = ""
    for ch in text:
        if not (ch.isalnum() or ch == "_"):
            break
        word += ch
    compound = text[0] == "@" or word in _COMPOUND
    parens = 0
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            triple = text[i : i + 3] == ch * 3
            if triple and quote in ("", ch * 3):
                quote = "" if quote else ch * 3
                i += 2
            elif quote in ("", ch):
                quote = "" if quote else ch
        elif ch == "\\" and text[i + 1 : i + 2] in ("'", '"', "\\"):
            if quote:
                i += 1
        elif not quote:
            if ch in "([{":
                parens += 1
            elif ch in ")]}":
                parens -= 1
        i += 1
    if len(quote) == 3:
        return True
    if parens > 0 and not quote:
        return True
    if text.endswith("\\"):
        return True
    return compound and not text.endswith("\n")


class LineEditor:
    """Edit ``text`` (earlier lines of a statement plus the current one) from console bytes.

    ``write`` receives the echo and cursor movements. ``feed`` returns None while editing,
    ``ENTER`` when a line is complete, ``TAB`` when completion is needed (``completion_word``),
    or a control code (Ctrl-A..E with an empty line, Ctrl-C always).
    """

    def __init__(self, write):
        self.write = write
        self.history = []
        self.text = ""
        self.orig = self.cursor = 0
        self.esc = self.prompt = ""
        self.hist = -1
        self.auto_indent = self.just_indented = False

    def start(self, prompt: str, keep: bool = False) -> None:
        """Show ``prompt`` and start a new line; ``keep`` appends to the statement so far."""
        if not keep:
            self.text = ""
            self.auto_indent = True
        self.orig = len(self.text)
        self.cursor = self.orig
        self.esc = ""
        self.hist = -1
        self.prompt = prompt
        self.just_indented = False
        self.write(prompt.encode())
        self._indent()

    @property
    def line(self) -> str:
        return self.text[self.orig :]

    def completion_word(self) -> str:
        return self.text[self.orig : self.cursor]

    def feed(self, c: int):
        before = len(self.text)
        back, redraw, forward = 0, False, 0
        if self.esc:
            return self._escape(c)
        if CTRL_A <= c <= CTRL_E and len(self.text) == self.orig:
            return c
        if c == CTRL_A:
            back = self.cursor - self.orig
        elif c == CTRL_C:
            return c
        elif c == CTRL_E:
            forward = len(self.text) - self.cursor
            self._move(0, False, forward, before)
            return None
        elif c == ENTER:
            self.write(b"\r\n")
            self._remember(self.line)
            return ENTER
        elif c == 27:
            self.esc = "\x1b"
            return None
        elif c in (8, 127):
            if self.cursor > self.orig:
                head = self.text[self.orig : self.cursor]
                n = 4 if len(head) >= 4 and not head.strip(" ") else 1
                self.text = self.text[: self.cursor - n] + self.text[self.cursor :]
                back, redraw = n, True
        elif self.just_indented and c in (TAB, 32):
            # Tab or space right after auto-indent: keep the indent (tab) or a single space.
            self.just_indented = self.auto_indent = False
            if c == 32:
                self.text = self.text[:-3]
                back = 3
        elif c == TAB:
            if self.cursor > 0 and self.text[self.cursor - 1 : self.cursor].isspace():
                self.insert("    ")
                return None
            return TAB
        elif 32 <= c <= 126:
            self.text = self.text[: self.cursor] + chr(c) + self.text[self.cursor :]
            redraw, forward = True, 1
        self._move(back, redraw, forward, before)
        return None

    def insert(self, s: str) -> None:
        """Insert ``s`` at the cursor (completion, tab indent)."""
        before = len(self.text)
        self.text = self.text[: self.cursor] + s + self.text[self.cursor :]
        self._move(0, True, len(s), before)

    def redraw_line(self) -> None:
        """Prompt and current line again, after completion printed a list of names."""
        self.write((self.prompt + self.text[self.orig : self.cursor]).encode())
        self._move(0, True, 0, len(self.text))

    def _escape(self, c: int):
        before = len(self.text)
        seq = self.esc + chr(c)
        back = forward = 0
        redraw = False
        digit = seq[:2] == "\x1b[" and len(seq) == 3 and chr(c).isdigit()
        if seq in ("\x1b[", "\x1bO") or digit:
            self.esc = seq
            return None
        self.esc = ""
        key = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left"}.get(seq)
        if seq in ("\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~"):
            back = self.cursor - self.orig
        elif seq in ("\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"):
            forward = len(self.text) - self.cursor
        elif seq == "\x1b[3~":
            if self.cursor < len(self.text):
                self.text = self.text[: self.cursor] + self.text[self.cursor + 1 :]
                redraw = True
        elif key == "right" and self.cursor < len(self.text):
            forward = 1
        elif key == "left" and self.cursor > self.orig:
            back = 1
        elif key in ("up", "down"):
            index = self.hist + (1 if key == "up" else -1)
            if -1 <= index < len(self.history):
                self.hist = index
                back = self.cursor - self.orig
                self.text = self.text[: self.orig] + (self.history[index] if index >= 0 else "")
                redraw, forward = True, len(self.text) - self.orig
        self._move(back, redraw, forward, before)
        return None

    def _move(self, back: int, redraw: bool, forward: int, before: int) -> None:
        out = b""
        if back:
            out += _cursor_back(back)
            self.cursor -= back
        if redraw:
            if len(self.text) < before:
                out += b"\x1b[K"
            out += self.text[self.cursor :].encode()
            out += _cursor_back(len(self.text) - (self.cursor + forward))
            self.cursor += forward
        elif forward:
            out += self.text[self.cursor : self.cursor + forward].encode()
            self.cursor += forward
        if out:
            self.write(out)
        self.just_indented = False

    def _remember(self, line: str) -> None:
        if line and (not self.history or self.history[0] != line):
            self.history.insert(0, line)
            del self.history[HISTORY:]

    def _indent(self) -> None:
        text = self.text
        if not self.auto_indent or len(text) < 2 or not text.endswith("\n"):
            return
        start = text.rfind("\n", 0, len(text) - 1) + 1
        previous = text[start:-1]
        if start > 0 and not previous.strip(" "):
            earlier = text[text.rfind("\n", 0, start - 1) + 1 : start - 1]
            if not earlier.strip(" "):
                return  # two blank lines: stop indenting
        n = (len(previous) - len(previous.lstrip(" "))) // 4 + previous.endswith(":")
        if n:
            self.text += "    " * n
            self.cursor = len(self.text)
            self.write(b"    " * n)
            self.just_indented = True


def _cursor_back(n: int) -> bytes:
    if n <= 0:
        return b""
    return b"\b" * n if n <= 4 else b"\x1b[%dD" % n
