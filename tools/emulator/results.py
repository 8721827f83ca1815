"""Final result codes a command handler can end with (reference §2, §9)."""


class AtError(Exception):
    """The command fails with a plain ``ERROR``."""


class CmeError(Exception):
    """The command fails with ``+CME ERROR: <code>`` (plain ERROR when AT+CMEE=0)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


class _NoFinal:
    """Marker: the command prints no final result (AT+CIFSR prints a bare IP, ref §5.2)."""

    def __repr__(self):
        return "NO_FINAL"


NO_FINAL = _NoFinal()

# Verbose texts for AT+CMEE=2 (ref §9; Cat.1 manual CME_ERROR table).
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    13: "SIM failure",
    14: "SIM busy",
    50: "Incorrect parameters",
    765: "Invalid input value",
    767: "Operation failed",
    797: "CFUN state is 0 or 4",
}
