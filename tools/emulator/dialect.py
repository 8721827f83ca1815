"""Dialect options: one switch per point where the sources disagree (reference §12).

Each option names the reference section it comes from. Values are set with
``--dialect name=value``, in a scenario's ``"dialect"`` object, or at run time with
``air724-sim ctl set name=value``.
"""

from dataclasses import dataclass

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@dataclass(frozen=True)
class Option:
    name: str
    default: object
    choices: tuple = ()
    ref: str = ""
    help: str = ""

    def parse(self, value):
        """Validate and convert a value given as text (or already typed)."""
        if isinstance(self.default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"{self.name}: expected yes/no, got {value!r}")
        if isinstance(self.default, int):
            try:
                number = int(value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{self.name}: expected an integer, got {value!r}") from err
            if number <= 0:
                raise ValueError(f"{self.name}: must be positive")
            return number
        text = str(value)
        if self.choices and text not in self.choices:
            raise ValueError(f"{self.name}: one of {', '.join(self.choices)}; got {value!r}")
        return text


OPTIONS = (
    Option(
        "cgmr",
        "quoted",
        ("quoted", "revision", "bare"),
        "§4, §12.1",
        '`+CGMR: "<fw>"` (Air724 log), `Revision: <fw>` (manual syntax) or bare (seed)',
    ),
    Option(
        "httpread_space",
        True,
        (),
        "§6.1, §12.10",
        "space after the colon in `+HTTPREAD: n` and `+HTTPHEAD: n`",
    ),
    Option(
        "sapbr_ip",
        "quoted",
        ("quoted", "plain"),
        "§5.1, §12.2",
        '`+SAPBR: 1,1,"10.x.y.z"` or unquoted zero-padded `010.xxx.yyy.zzz`',
    ),
    Option(
        "pdp_deact",
        "space",
        ("space", "colon-space", "colon", "cgev"),
        "§5.3, §12.6",
        "`+PDP DEACT`, `+PDP: DEACT`, `+PDP:DEACT` or `+CGEV: NW PDN DEACT 1`",
    ),
    Option(
        "msub_byte",
        True,
        (),
        "§7.3, §12.5",
        "` byte` after the length in `+MSUB:` (all real logs) or the manual's bare length",
    ),
    Option(
        "msgget_topic",
        "quoted",
        ("quoted", "plain"),
        "§7.3",
        "topic quoted or not in `AT+MQTTMSGGET` output",
    ),
    Option(
        "no_sim",
        "not-inserted",
        ("not-inserted", "sim-removed", "cme10"),
        "§4, §12.7",
        "no SIM: `+CPIN: NOT INSERTED`, `+CPIN: SIM REMOVED` or `+CME ERROR: 10`",
    ),
    Option("mpub_max", 2384, (), "§7.4, §12.3", "AT+MPUB message limit: 2384, 2348 or 4100"),
    Option(
        "mpub_count",
        "escaped",
        ("escaped", "decoded"),
        "§7.4 (INFERRED)",
        "whether the MPUB limit counts the escaped text or the decoded bytes",
    ),
    Option("rx_max", 1360, (), "§7.4, §12.4", "largest incoming payload in direct mode"),
    Option(
        "rx_overflow",
        "truncate",
        ("truncate", "drop"),
        "§7.4 (INFERRED)",
        "what happens to a bigger incoming payload",
    ),
    Option(
        "boot_urcs",
        "cpin",
        ("rdy", "cpin", "780x"),
        "§3.2, §12.13",
        "boot URCs: `RDY` only; `RDY` + `+CPIN: READY`; or the Air780 list",
    ),
    Option("cpin_twice", False, (), "§1.3 V301831", "`+CPIN: READY` reported twice at boot"),
    Option(
        "autobaud",
        True,
        (),
        "§2",
        "AT+IPR=0: nothing is answered (and no URC sent) until an upper-case `AT`",
    ),
    Option(
        "autobaud_reset",
        False,
        (),
        "§2 (INFERRED)",
        "a soft reboot needs a new `AT` to train the baud rate again",
    ),
    Option(
        "iccid_first_error",
        False,
        (),
        "§1.3 V301833",
        "the first `AT+ICCID` after boot answers ERROR (firmware before V301833)",
    ),
    Option(
        "mpubex_prompt",
        "gt",
        ("gt", "gt-space", "gt-line"),
        "§2, §7.2",
        "AT+MPUBEX prompt: `>`, `> ` or `>` followed by CRLF",
    ),
    Option(
        "mpubex_echo_bug",
        False,
        (),
        "§1.3 V301847",
        "MPUBEX data is echoed even after ATE0 (firmware before V301847)",
    ),
    Option(
        "explicit_pdp",
        False,
        (),
        "§5, §12.9",
        "MQTT needs AT+CSTT/AT+CIICR first (724-era guides) instead of the default PDP",
    ),
    Option(
        "mconfig_empty",
        "ok",
        ("ok", "cme765"),
        "§7.2",
        "AT+MCONFIG with empty user/password: OK or `+CME ERROR: 765` (780E note)",
    ),
    Option(
        "already_connect",
        "ok",
        ("ok", "error"),
        "§7.2, §11",
        "`AT+MIPSTART` on a live link: `OK` or `ERROR`, then `ALREADY CONNECT`",
    ),
    Option("connect_fail_state", True, (), "§7.2", "print `STATE: <state>` before `CONNECT FAIL`"),
    Option(
        "connack_refused",
        "closed",
        ("closed", "error"),
        "§7.2, §11",
        "CONNACK refusal: `CLOSED`, or `ERROR` then `CLOSED`",
    ),
    Option("closed_urc", True, (), "§1.3 V838", "`CLOSED` when the server closes (since V838)"),
    Option(
        "mqttmsgset_boot",
        "push",
        ("push", "cache"),
        "§7.2, §7.4",
        'AT+MQTTMSGSET after boot: push (`+MSUB: "<topic>",<n> byte,...`) or cache (4 slots, '
        "`+MSUB: <slot>` notices, AT+MQTTMSGGET)",
    ),
    Option("cmee_boot", "1", ("0", "1", "2"), "§9", "AT+CMEE after boot (0: every error `ERROR`)"),
    Option(
        "msub_count",
        "exact",
        ("exact", "long", "short"),
        "§7.3 (fault)",
        "the +MSUB length: exact, 600 more than follow, or 5 fewer",
    ),
    Option(
        "httpread_count",
        "exact",
        ("exact", "long", "short"),
        "§6.2 (fault)",
        "the +HTTPREAD length: exact, 600 more than follow, or 5 fewer",
    ),
    Option(
        "half_open",
        False,
        (),
        "§7.5 (fault)",
        "every MQTT link goes silent after CONNACK: `+MQTTSTATU :1`, no `CLOSED`, no traffic",
    ),
    Option(
        "mconnect_closed",
        False,
        (),
        "§7.2, §11 (fault)",
        "the link drops during every AT+MCONNECT: `OK`, then `CLOSED`, no CONNACK",
    ),
    Option("httpaction_repeat", 1, (), "§6.3", "times the `+HTTPACTION:` URC is printed"),
    Option(
        "cgatt_follows_pdp",
        True,
        (),
        "§1.3 V1066",
        "`+CGATT: 0` while the default bearer is not active (since V1066)",
    ),
    Option(
        "tls_suites",
        "host",
        ("host", "air724"),
        "§8",
        "TLS offered: the host's defaults, or only the module's (TLS 1.2, six RSA suites)",
    ),
)

BY_NAME = {o.name: o for o in OPTIONS}


class Dialect:
    """Current values of every option; attribute access by option name."""

    def __init__(self, values=None):
        self.__dict__["_values"] = {o.name: o.default for o in OPTIONS}
        for name, value in (values or {}).items():
            self.set(name, value)

    def set(self, name, value):
        key = name.replace("-", "_")
        if key not in BY_NAME:
            raise ValueError(f"unknown dialect option {name!r}")
        self._values[key] = BY_NAME[key].parse(value)

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][name]
        except KeyError as err:
            raise AttributeError(name) from err

    def __setattr__(self, name, value):
        self.set(name, value)

    def as_dict(self):
        return dict(self._values)


def parse_assignment(text):
    """``name=value`` → (name, value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"expected name=value, got {text!r}")
    return name.strip(), value.strip()
