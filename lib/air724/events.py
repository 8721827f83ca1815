"""Link events: the Air724's URCs that mean the link (or the module) changed state.

``LINK`` is the one table of that knowledge: (line prefix, event name, link down?). From it
``LinkEvents`` registers the URCs and classifies them, ``DOWN`` names the events after which the
MQTT link is gone and ``DOWN_LINES`` are the lines that end an MQTT command at once
(air724.mqtt). ``LinkEvents`` publishes each event by name to the subscribed callbacks,
``callback(name, line)``, and into its ring (``atmodem.Ring``), read by ``await get()``.
"""

from atmodem import Ring

CLOSED = "closed"  # URC CLOSED: the MQTT TCP link closed (§7.5; reliable since V838)
PDP_DEACT = "pdp_deact"  # PDP context deactivated: any spelling holding DEACT (§5.3)
BEARER_DEACT = "bearer_deact"  # +SAPBR 1: DEACT, the HTTP bearer dropped (§5.1)
REBOOT = "reboot"  # RDY: the module (re)started; echo is on again, settings lost (§3.2)
SIM_REMOVED = "sim_removed"  # +CPIN: NOT INSERTED (Air724) / SIM REMOVED (manual) (§3.2)
SIM_READY = "sim_ready"  # +CPIN: READY

# (prefix, event, link down?): the first row whose prefix starts a line names its event.
LINK = (
    (b"CLOSED", CLOSED, True),  # §7.5
    (b"+PDP DEACT", PDP_DEACT, True),  # the §5.3 spellings, §12.6
    (b"+PDP: DEACT", PDP_DEACT, True),
    (b"+PDP:DEACT", PDP_DEACT, True),
    (b"PDP DEACT", PDP_DEACT, True),
    (b"+CGEV: NW PDN DEACT", PDP_DEACT, True),  # "+CGEV: ME PDN ACT 1" is not a loss
    (b"+CGEV: ME PDN DEACT", PDP_DEACT, True),
    (b"+SAPBR ", BEARER_DEACT, False),  # "+SAPBR <cid>: DEACT"; the query answers "+SAPBR:"
    (b"RDY", REBOOT, True),  # §3.2
    (b"+CPIN: NOT INSERTED", SIM_REMOVED, True),  # §3.2, Air724 engine
    (b"+CPIN: SIM REMOVED", SIM_REMOVED, True),  # §3.2, manual and hot-plug
    (b"+CPIN: READY", SIM_READY, False),
)
# URCs with no event of their own: the rest of +PDP/+CGEV/+CPIN and the boot and network URCs
# after +CPIN:, which must not land in a bare-line answer such as AT+CGSN's (air724-at.md §3.2
# "a robust driver should treat ... as URCs").
_QUIET = (
    b"+PDP",
    b"+CGEV:",
    b"+CPIN:",
    b"^MODE:",
    b"+NITZ:",
    b"SMS READY",
    b"+E_UTRAN",
    b"UART Boot",
    b"+CREG:",
    b"+CEREG:",
    b"+CGREG:",
)
DOWN = tuple({row[1] for row in LINK if row[2]})
DOWN_LINES = tuple(row[0] for row in LINK if row[2])


def _covered(prefix) -> bool:
    for quiet in _QUIET:
        if prefix.startswith(quiet):
            return True
    return False


def classify(line: bytes) -> "str | None":
    """The event a line means, or None; any other line holding DEACT is a PDP loss (§5.3)."""
    for row in LINK:
        if line.startswith(row[0]):
            return row[1]
    return PDP_DEACT if b"DEACT" in line else None


class LinkEvents(Ring):
    """Publishes link events from the URCs; ``size`` bounds the ring read by ``get``.

    ``await get(timeout_ms)`` returns the oldest unread event as ``(name, line)``.
    """

    def __init__(self, channel, size: int = 8):
        super().__init__(size)
        self._subs = []
        urc = self.unsolicited
        for prefix in _QUIET:
            channel.add_urc(prefix, urc)
        for row in LINK:  # the rows no quiet prefix covers already (classify sorts them out)
            if not _covered(row[0]):
                channel.add_urc(row[0], urc)

    def subscribe(self, callback) -> None:
        """``callback(name: str, line: bytes)``, called from the reader task: must not block."""
        if callback not in self._subs:
            self._subs.append(callback)

    def unsubscribe(self, callback) -> None:
        if callback in self._subs:
            self._subs.remove(callback)

    def unsolicited(self, line: "bytes | memoryview") -> None:
        """Classify a URC, or a line no URC took (any PDP-deactivation spelling counts), and
        publish its event. ``line`` may be a memoryview valid during the call only."""
        line = bytes(line)
        name = classify(line)
        if name is None:
            return
        self.put((name, line))
        for callback in self._subs:
            callback(name, line)
