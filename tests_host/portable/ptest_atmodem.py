"""AT engine (lib/atmodem) through the UART shim, on CPython and MicroPython.

Most tests run over several deliveries: whole replies, one byte per read, and seeded random
chunks, because line cutting and counted reads must not depend on how the UART splits bytes.
"""

import asyncio

from fakes import EOF, Chunks, Delay, Read, ReadOnlyStream, Rig, Wait, wait_ms
from ptest import raises

from atmodem import (
    EV_CLOSED,
    EV_DATA_DROPPED,
    EV_HANDLER_ERROR,
    EV_OVERFLOW,
    EV_UNSOLICITED,
    AbortError,
    ArgumentError,
    ATChannel,
    ATTimeoutError,
    ClosedError,
    CMEError,
    CommandError,
    DataError,
    ResponseError,
)

CHUNKS = (0, 1, (1, 9), (1, 40))
BINARY = b'\r\nOK\r\n"quoted",comma,\r\nERROR\r\n+CME ERROR: 3\r\n> ' + bytes(range(256))


def channel(**kw):
    def make(stream):
        return ATChannel(stream, **kw)

    return make


class Collector:
    """URC handler / event observer that copies what it gets and can be awaited."""

    def __init__(self):
        self.items = []
        self.ev = asyncio.Event()

    def __call__(self, a, b=None):
        self.items.append(bytes(a) if b is None else (bytes(a), bytes(b)))
        self.ev.set()

    def event(self, kind, data):
        if isinstance(data, memoryview):
            data = bytes(data)
        self.items.append((kind, data))
        self.ev.set()

    async def wait(self, n=1, timeout_ms=1000):
        async def enough():
            while len(self.items) < n:
                self.ev.clear()
                await self.ev.wait()

        await wait_ms(enough(), timeout_ms)


class MsubRule:
    """Test stand-in for the driver's header rule ``+MSUB: "<topic>",<n> byte,``, asked at each
    comma: keeps the header it read (as the driver keeps the topic) for the handler."""

    def __init__(self, msgs):
        self.msgs = msgs
        self.head = None

    def count(self, buf, s, e):
        h = bytes(buf[s:e])
        if not h.endswith(b" byte,"):
            return -1
        self.head = h
        return int(h[h.rfind(b",", 0, len(h) - 1) + 1 : -6])

    def handler(self, head, payload):
        assert head is None  # an inline rule's header: what the rule kept
        self.msgs(self.head, payload)


async def test_round_trip_and_exact_wire_bytes():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk) as rig:
            rig.modem.on(b"AT", b"\r\nOK\r\n")
            rig.modem.on(b"AT+CSQ", b"\r\n+CSQ: 29,99\r\n\r\nOK\r\n")
            ch = rig.obj
            assert await ch.command(b"AT", 500) == [b"OK"]
            assert await ch.command("AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 29,99", b"OK"]
            assert bytes(rig.stream.written) == b"AT\rAT+CSQ\r"


async def test_echo_on_is_not_part_of_the_response():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk, echo=True) as rig:
            rig.modem.on(b"AT+CSQ", b"\r\n+CSQ: 29,99\r\n\r\nOK\r\n")
            rig.modem.on(b"AT+CGSN", b"\r\n862991419835241\r\n\r\nOK\r\n")
            ch = rig.obj
            assert await ch.command(b"AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 29,99", b"OK"]
            assert await ch.command(b"AT+CGSN", 500, resp=None) == [b"862991419835241", b"OK"]


async def test_boot_noise_blank_lines_and_cr_only_line_ends():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk) as rig:
            ch = rig.obj
            urcs = Collector()
            ch.add_urc(b"RDY", urcs)
            ch.add_urc(b"+CPIN:", urcs)
            rig.modem.inject(b"\x00\xff\xff\x00\xffRDY\r\x00\xff\r\r\n\n+CPIN: READY\r")
            await urcs.wait(2)
            assert urcs.items == [b"RDY", b"+CPIN: READY"]
            rig.modem.on(b"ATE0", b"\rOK\r")
            rig.modem.on(b"AT+CSQ", b"\n+CSQ: 3,99\n\nOK\n")
            assert await ch.command(b"ATE0", 500) == [b"OK"]
            assert await ch.command(b"AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 3,99", b"OK"]


async def test_urc_between_echo_intermediate_lines_and_ok_goes_to_its_handler():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk, echo=True) as rig:
            ch = rig.obj
            urcs = Collector()
            ch.add_urc(b"+CREG:", urcs)
            ch.add_urc(b"RDY", urcs)
            rig.modem.on(
                b"AT+CSQ",
                b"\r\n+CREG: 1,5\r\n",
                b"\r\n+CSQ: 10,99\r\n",
                b"\r\nRDY\r\n",
                b"\r\nOK\r\n",
            )
            # A bare-line answer: the URC still goes to its handler, not into the response.
            rig.modem.on(b"AT+CGSN", b"\r\n+CREG: 2\r\n862991419835241\r\n\r\nOK\r\n")
            assert await ch.command(b"AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 10,99", b"OK"]
            assert await ch.command(b"AT+CGSN", 500, resp=None) == [b"862991419835241", b"OK"]
            assert urcs.items == [b"+CREG: 1,5", b"RDY", b"+CREG: 2"]


async def test_urc_between_two_commands():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk) as rig:
            ch = rig.obj
            urcs = Collector()
            ch.add_urc(b"+CREG:", urcs)
            rig.modem.on(b"AT+CGATT?", b"\r\n+CGATT: 1\r\n\r\nOK\r\n\r\n+CREG: 1\r\n")
            rig.modem.on(b"AT+CSQ", b"\r\n+CSQ: 7,99\r\n\r\nOK\r\n")
            assert await ch.command(b"AT+CGATT?", 500, resp=b"+CGATT:") == [b"+CGATT: 1", b"OK"]
            rig.modem.inject(b"\r\n+CREG: 5\r\n")
            assert await ch.command(b"AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 7,99", b"OK"]
            await urcs.wait(2)
            assert urcs.items == [b"+CREG: 1", b"+CREG: 5"]


async def test_unknown_line_during_a_prefixed_command_is_reported_not_returned():
    async with Rig(channel()) as rig:
        ch = rig.obj
        events = Collector()
        ch.on_event = events.event
        rig.modem.on(b"AT+CSQ", b"\r\n^MODE: 17,17\r\n+CSQ: 9,99\r\n\r\nOK\r\n")
        assert await ch.command(b"AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 9,99", b"OK"]
        assert events.items == [(EV_UNSOLICITED, b"^MODE: 17,17")]


async def test_own_success_and_abort_tokens():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk) as rig:
            ch = rig.obj
            closed = Collector()
            ch.add_urc(b"CLOSED", closed)
            ok, abort = (b"CONNECT OK", b"ALREADY CONNECT"), (b"CONNECT FAIL", b"CLOSED")
            cmd = b'AT+MIPSTART="h.example",1883'
            rig.modem.on(cmd, b"\r\nOK\r\n", Delay(5), b"\r\nCONNECT OK\r\n")
            rig.modem.on(cmd, b"\r\nOK\r\n\r\nALREADY CONNECT\r\n")
            rig.modem.on(cmd, b"\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n\r\nCONNECT FAIL\r\n")
            rig.modem.on(cmd, b"\r\nOK\r\n\r\nCLOSED\r\n")
            lines = await ch.command(cmd, 1000, ok=ok, abort=abort, resp=None)
            assert lines == [b"OK", b"CONNECT OK"]  # resp=None: the intermediate OK is kept
            assert await ch.command(cmd, 1000, ok=ok, abort=abort) == [b"ALREADY CONNECT"]
            with raises(AbortError) as fail:
                await ch.command(cmd, 1000, ok=ok, abort=abort)
            assert fail.value.line == b"CONNECT FAIL"
            with raises(AbortError) as fail:
                await ch.command(cmd, 1000, ok=ok, abort=abort)
            assert fail.value.line == b"CLOSED"
            # The abort line is a link event too: the URC table saw it.
            assert closed.items == [b"CLOSED"]


async def test_typed_errors():
    for chunk in (0, 1):
        async with Rig(channel(), chunk=chunk) as rig:
            ch = rig.obj
            rig.modem.on(b"AT+A", b"\r\nERROR\r\n")
            rig.modem.on(b"AT+B", b"\r\n+CME ERROR: 767\r\n")
            rig.modem.on(b"AT+C", b"\r\n+CMS ERROR: 500\r\n")
            rig.modem.on(b"AT+D", b"\r\nERROR:12\r\n")
            with raises(CommandError) as err:
                await ch.command(b"AT+A", 500)
            assert err.value.line == b"ERROR" and err.value.code == -1
            assert not isinstance(err.value, CMEError)
            with raises(CMEError) as err:
                await ch.command(b"AT+B", 500)
            assert err.value.code == 767 and isinstance(err.value, CommandError)
            with raises(CMEError) as err:
                await ch.command(b"AT+C", 500)
            assert err.value.code == 500
            with raises(CommandError) as err:
                await ch.command(b"AT+D", 500)
            assert err.value.code == 12 and err.value.line == b"ERROR:12"


async def test_timeout_then_late_result_is_not_the_next_answer():
    for chunk in (0, 1):
        async with Rig(channel(), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            late = asyncio.Event()
            m.on(b"AT+SLOW", Wait(late), b"\r\nOK\r\n")
            # The probe's answer comes a little later than the late OK: taking that OK as the
            # probe's would send AT+NOPE early, and AT+NOPE would then get the probe's OK.
            m.on(b"AT+CSQ", Delay(20), b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
            m.on(b"AT+NOPE", b"\r\nERROR\r\n")
            with raises(ATTimeoutError) as err:
                await ch.command(b"AT+SLOW", 30)
            assert err.value.args == (b"AT+SLOW",)
            task = asyncio.create_task(ch.command(b"AT+NOPE", 1000))
            await m.wait_written(b"AT+CSQ\r")  # the resync probe is on the wire...
            late.set()  # ...and only now the module answers the timed-out command
            with raises(CommandError):
                await task  # its own ERROR, not the late OK
            assert m.commands == [b"AT+SLOW", b"AT+CSQ", b"AT+NOPE"]
            m.on(b"AT", b"\r\nOK\r\n")
            assert await ch.command(b"AT", 500) == [b"OK"]
            assert m.commands[-1] == b"AT"  # in sync again: no second probe


async def test_late_result_while_idle_is_dropped_and_probe_differs_from_stale_command():
    async with Rig(channel()) as rig:
        m, ch = rig.modem, rig.obj
        events = Collector()
        ch.on_event = events.event
        late = asyncio.Event()
        m.on(b"AT+CSQ", Wait(late), b"\r\n+CSQ: 5,99\r\n\r\nOK\r\n")
        m.on(b"AT+CMEE?", b"\r\n+CMEE: 1\r\n\r\nOK\r\n")
        m.on(b"AT+CSQ", b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
        with raises(ATTimeoutError):
            await ch.command(b"AT+CSQ", 30, resp=b"+CSQ:")
        late.set()
        await events.wait(2)  # the late answer arrives while nothing is pending
        assert events.items == [(EV_UNSOLICITED, b"+CSQ: 5,99"), (EV_UNSOLICITED, b"OK")]
        # A late "+CSQ:" line could fool a CSQ probe, so the probe is AT+CMEE? here.
        assert await ch.command(b"AT+CSQ", 1000, resp=b"+CSQ:") == [b"+CSQ: 21,99", b"OK"]
        assert m.commands == [b"AT+CSQ", b"AT+CMEE?", b"AT+CSQ"]


async def test_cancelled_callers_leave_the_engine_consistent():
    for chunk in (0, 1):
        async with Rig(channel(), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            late = asyncio.Event()
            m.on(b"AT+HANG", Wait(late), b"\r\n+HANG: 1\r\n\r\nOK\r\n")
            m.on(b"AT+CSQ", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
            m.on(b"AT", b"\r\nOK\r\n", repeat=True)
            first = asyncio.create_task(ch.command(b"AT+HANG", 5000))
            await m.wait_command(b"AT+HANG")
            queued = asyncio.create_task(ch.command(b"AT+QUEUED", 5000))  # waits for the lock
            await asyncio.sleep(0)
            first.cancel()
            queued.cancel()
            for task in (first, queued):
                with raises(asyncio.CancelledError):
                    await task
            late.set()
            assert await ch.command(b"AT", 1000) == [b"OK"]
            assert await ch.command(b"AT", 1000) == [b"OK"]
            assert m.commands == [b"AT+HANG", b"AT+CSQ", b"AT", b"AT"]


async def test_concurrent_callers_are_serialized():
    for chunk in ((1, 5), 0):
        async with Rig(channel(), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            for i in range(6):
                reply = b"\r\n+Q%d: %d\r\n" % (i, i * 11)
                m.on(b"AT+Q%d" % i, Delay(i % 3), reply, b"\r\nOK\r\n")

            async def ask(ch, i):
                return await ch.command(b"AT+Q%d" % i, 2000, resp=b"+Q%d:" % i)

            tasks = [asyncio.create_task(ask(ch, i)) for i in range(6)]
            for i, task in enumerate(tasks):
                assert await task == [b"+Q%d: %d" % (i, i * 11), b"OK"]
            # Each command went out whole, one after the other.
            assert bytes(rig.stream.written) == b"".join(c + b"\r" for c in m.commands)
            assert sorted(m.commands) == [b"AT+Q%d" % i for i in range(6)]


async def test_exclusive_runs_commands_back_to_back():
    async with Rig(channel()) as rig:
        m, ch = rig.modem, rig.obj
        m.on(b"AT+ONE", Delay(5), b"\r\nOK\r\n")
        m.on(b"AT+TWO", b"\r\nOK\r\n")
        m.on(b"AT+OTHER", b"\r\nOK\r\n")
        async with ch.exclusive():
            assert await ch.command(b"AT+ONE", 500) == [b"OK"]
            other = asyncio.create_task(ch.command(b"AT+OTHER", 500))
            await asyncio.sleep(0)
            assert await ch.command(b"AT+TWO", 500) == [b"OK"]
        assert await other == [b"OK"]
        assert m.commands == [b"AT+ONE", b"AT+TWO", b"AT+OTHER"]


async def test_counted_read_after_header_line_is_exact_whatever_the_bytes():
    for bufsize in (1024, 64):
        for chunk in CHUNKS:
            async with Rig(channel(bufsize=bufsize), chunk=chunk) as rig:
                m, ch = rig.modem, rig.obj
                urcs = Collector()
                ch.add_urc(b"+CREG:", urcs)
                head = b"+HTTPREAD: %d" % len(BINARY)
                m.on(b"AT+HTTPREAD", b"\r\n" + head + b"\r\n", BINARY, b"\r\n+CREG: 1\r\nOK\r\n")
                m.on(b"AT+HTTPREAD", b"\r\n+HTTPREAD:5\r\n\r\nOK\r\r\nOK\r\n")
                m.on(b"AT+HTTPREAD", b"\r\n+HTTPREAD: 0\r\n\r\nOK\r\n")
                lines = await ch.command(b"AT+HTTPREAD", 1000, counted=b"+HTTPREAD:")
                assert lines == [head, BINARY, b"OK"]
                assert urcs.items == [b"+CREG: 1"]
                lines = await ch.command(b"AT+HTTPREAD", 1000, counted=b"+HTTPREAD:")
                assert lines == [b"+HTTPREAD:5", b"\r\nOK\r", b"OK"]
                lines = await ch.command(b"AT+HTTPREAD", 1000, counted=b"+HTTPREAD:")
                assert lines == [b"+HTTPREAD: 0", b"", b"OK"]


async def test_counted_payload_over_data_max_is_skipped_with_an_error():
    for chunk in (0, 1, (1, 9)):
        async with Rig(channel(bufsize=64, data_max=100), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            events = Collector()
            ch.on_event = events.event
            m.on(b"AT+HTTPREAD", b"\r\n+HTTPREAD: %d\r\n" % len(BINARY), BINARY, b"\r\nOK\r\n")
            m.on(b"AT", b"\r\nOK\r\n")
            with raises(DataError):
                await ch.command(b"AT+HTTPREAD", 1000, counted=b"+HTTPREAD:")
            assert events.items == [(EV_DATA_DROPPED, len(BINARY))]
            assert await ch.command(b"AT", 500) == [b"OK"]


async def test_inline_counted_urc_payload_arrives_intact():
    for bufsize in (1024, 48):
        for chunk in CHUNKS:
            async with Rig(channel(bufsize=bufsize), chunk=chunk, echo=True) as rig:
                m, ch = rig.modem, rig.obj
                msgs = Collector()
                rule = MsubRule(msgs)
                ch.add_urc(b"+MSUB:", rule.handler, counted=rule.count)
                slot = Collector()
                ch.add_urc(b"+MSUB: ", slot)  # the cache-mode form "+MSUB: 0" is a plain line
                one = b'+MSUB: "a/b",%d byte,' % len(BINARY)
                two = b'+MSUB: "a/c",3 byte,'
                m.on(b"AT+CSQ", b"\r\n+CSQ: 1,99\r\n\r\n" + one, BINARY, b"\r\n\r\nOK\r\n")
                m.on(b"AT+CSQ", b"\r\n+CSQ: 2,99\r\n\r\nOK\r\n")
                assert await ch.command(b"AT+CSQ", 1000, resp=b"+CSQ:") == [b"+CSQ: 1,99", b"OK"]
                m.inject(b"\r\n" + two + b"x\r\n\r\n" + two + b"OK\r\r\n+MSUB: 0\r\n")
                assert await ch.command(b"AT+CSQ", 1000, resp=b"+CSQ:") == [b"+CSQ: 2,99", b"OK"]
                await msgs.wait(3)
                await slot.wait(1)
                assert msgs.items == [(one, BINARY), (two, b"x\r\n"), (two, b"OK\r")]
                assert slot.items == [b"+MSUB: 0"]


async def test_download_prompt_releases_the_payload():
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            cmd = b"AT+HTTPDATA=%d,20000" % len(BINARY)
            m.on(cmd, b"\r\nDOWNLOAD\r\n", Read(len(BINARY)), b"\r\nOK\r\n")
            lines = await ch.command(cmd, 1000, prompt=b"DOWNLOAD", payload=BINARY)
            assert lines == [b"OK"]
            assert m.payloads == [BINARY]
            assert bytes(rig.stream.written) == cmd + b"\r" + BINARY
            assert m.commands == [cmd]  # the payload's own CR/LF made no command


async def test_gt_prompt_without_line_end_and_injection_inside_payload():
    payload = b'\x00"\r\nAT+RESET\r\n\xff'
    for chunk in CHUNKS:
        async with Rig(channel(), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            cmd = b'AT+MPUBEX="t",1,0,%d' % len(payload)
            m.on(cmd, b"\r\n>", Read(len(payload)), b"\r\nOK\r\n\r\nPUBACK\r\n")
            m.on(cmd, b"\r\n> ", Read(len(payload)), b"\r\nOK\r\n")
            lines = await ch.command(cmd, 1000, ok=b"PUBACK", prompt=b">", payload=payload)
            assert lines == [b"PUBACK"]
            lines = await ch.command(cmd, 1000, prompt=b">", payload=payload)
            assert lines == [b"OK"]
            assert m.payloads == [payload, payload]
            assert m.commands == [cmd, cmd]


async def test_error_instead_of_prompt_writes_no_payload():
    async with Rig(channel()) as rig:
        m, ch = rig.modem, rig.obj
        m.on(b'AT+MPUBEX="t",0,0,4', b"\r\n+CME ERROR: 767\r\n")
        with raises(CMEError) as err:
            await ch.command(b'AT+MPUBEX="t",0,0,4', 500, prompt=b">", payload=b"abcd")
        assert err.value.code == 767
        assert bytes(rig.stream.written) == b'AT+MPUBEX="t",0,0,4\r'


async def test_overlong_line_is_dropped_with_an_event_and_the_engine_goes_on():
    for chunk in CHUNKS:
        async with Rig(channel(bufsize=32), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            events = Collector()
            ch.on_event = events.event
            urcs = Collector()
            ch.add_urc(b"+CREG:", urcs)
            m.inject(b"\r\n+CREG: " + b"9" * 100 + b"\r\n\r\n+CREG: 1\r\n")
            await urcs.wait(1)
            m.on(b"AT+CSQ", b"\r\n+CSQ: " + b"7" * 80 + b"\r\n\r\n+CSQ: 8,99\r\n\r\nOK\r\n")
            assert await ch.command(b"AT+CSQ", 500, resp=b"+CSQ:") == [b"+CSQ: 8,99", b"OK"]
            assert urcs.items == [b"+CREG: 1"]
            assert events.items == [(EV_OVERFLOW, None), (EV_OVERFLOW, None)]
            assert ch.overflows == 2


async def test_stream_closed_fails_pending_and_later_commands():
    async with Rig(channel()) as rig:
        m, ch = rig.modem, rig.obj
        events = Collector()
        ch.on_event = events.event
        m.on(b"AT+X", b"\r\n+X: 1\r\n", EOF)
        with raises(ClosedError):
            await ch.command(b"AT+X", 1000, resp=b"+X:")
        assert ch.closed
        assert events.items == [(EV_CLOSED, None)]
        with raises(ClosedError):
            await ch.command(b"AT", 1000)
        assert m.commands == [b"AT+X"]


async def test_handler_error_is_reported_and_dispatch_goes_on():
    async with Rig(channel()) as rig:
        m, ch = rig.modem, rig.obj
        events = Collector()
        ch.on_event = events.event
        good = Collector()

        def bad(line):
            raise ValueError("boom")

        ch.add_urc(b"+BAD", bad)
        ch.add_urc(b"+GOOD", good)
        m.inject(b"\r\n+BAD: 1\r\n\r\n+GOOD: 2\r\n")
        await good.wait(1)
        assert events.items[0][0] == EV_HANDLER_ERROR
        assert isinstance(events.items[0][1], ValueError)
        assert ch.handler_errors == 1
        ch.remove_urc(b"+GOOD")
        m.inject(b"\r\n+GOOD: 3\r\n")
        m.on(b"AT", b"\r\nOK\r\n")
        assert await ch.command(b"AT", 500) == [b"OK"]
        assert good.items == [b"+GOOD: 2"]
        assert events.items[-1] == (EV_UNSOLICITED, b"+GOOD: 3")


async def test_command_with_cr_or_lf_is_rejected_before_the_wire():
    async with Rig(channel()) as rig:
        ch = rig.obj
        for bad in (b'AT+MSUB="a"\r\nAT+RESET', b"AT\rAT+RESET", "AT+X\n"):
            with raises(ArgumentError):
                await ch.command(bad, 500)
        assert bytes(rig.stream.written) == b""


async def test_stream_without_readinto():
    for chunk in (0, 1, (1, 9)):
        async with Rig(lambda s: ATChannel(ReadOnlyStream(s), bufsize=64), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            m.on(b"AT+HTTPREAD", b"\r\n+HTTPREAD: %d\r\n" % len(BINARY), BINARY, b"\r\nOK\r\n")
            m.on(b"AT", b"\r\nOK\r\n")
            lines = await ch.command(b"AT+HTTPREAD", 1000, counted=b"+HTTPREAD:")
            assert lines[1] == BINARY
            assert await ch.command(b"AT", 500) == [b"OK"]


async def test_real_asyncio_stream_from_open_connection():
    """The engine on the runtime's own stream classes (a TCP loopback stands in for a pty)."""
    received = []
    replies = {
        b"ATE0": b"ATE0\r\r\nOK\r\n\r\nRDY\r\n",
        b"AT+CSQ": b"\r\n+CSQ: 30,99\r\n\r\nOK\r\n",
    }

    async def module(reader, writer):
        data = b""
        while True:
            chunk = await reader.read(64)
            if not chunk:
                break
            data += chunk
            while b"\r" in data:
                i = data.find(b"\r")
                received.append(data[:i])
                writer.write(replies[data[:i]])
                await writer.drain()
                data = data[i + 1 :]
        writer.close()

    server = None
    ports = Chunks((40000, 49999), id(received))  # a free port, tried from a seeded sequence
    for _ in range(20):
        port = ports.next()
        try:
            server = await asyncio.start_server(module, "127.0.0.1", port)
            break
        except OSError:
            pass
    assert server is not None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ch = ATChannel(reader, writer)
        urcs = Collector()
        ch.add_urc(b"RDY", urcs)
        ch.start()
        try:
            assert await ch.command(b"ATE0", 2000) == [b"OK"]
            assert await ch.command(b"AT+CSQ", 2000, resp=b"+CSQ:") == [b"+CSQ: 30,99", b"OK"]
            assert urcs.items == [b"RDY"]
            assert received == [b"ATE0", b"AT+CSQ"]
        finally:
            await ch.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_short_timeout_after_a_long_one_fires_on_time():
    async with Rig(channel(), default=None) as rig:
        m, ch = rig.modem, rig.obj
        m.on(b"AT", Delay(5), b"\r\nOK\r\n")
        assert await ch.command(b"AT", 60000) == [b"OK"]  # the timer now sleeps for 60 s
        with raises(ATTimeoutError):
            await wait_ms(ch.command(b"AT+SILENT", 30), 2000)  # re-armed: 30 ms, not 60 s


async def test_result_before_prompt_and_explicit_resync():
    async with Rig(channel()) as rig:
        m, ch = rig.modem, rig.obj
        m.on(b"AT+HTTPDATA=4,1000", b"\r\nOK\r\n")  # no DOWNLOAD: the body was never asked for
        with raises(ResponseError):
            await ch.command(b"AT+HTTPDATA=4,1000", 500, prompt=b"DOWNLOAD", payload=b"abcd")
        assert m.payloads == []
        m.on(b"AT+CSQ", b"\r\nOK\r\n\r\n+CSQ: 1,99\r\n\r\nOK\r\n")  # a stray OK first
        await ch.resync(500)
        assert m.commands == [b"AT+HTTPDATA=4,1000", b"AT+CSQ"]


async def test_counted_read_of_a_timed_out_command_is_reported_not_returned():
    for chunk in (0, 1):
        async with Rig(channel(), chunk=chunk) as rig:
            m, ch = rig.modem, rig.obj
            events = Collector()
            ch.on_event = events.event
            rest = asyncio.Event()
            m.on(b"AT+HTTPREAD", b"\r\n+HTTPREAD: 10\r\n01234", Wait(rest), b"56789\r\nOK\r\n")
            m.on(b"AT+CSQ", b"\r\n+CSQ: 1,99\r\n\r\nOK\r\n")  # the resync probe
            m.on(b"AT", b"\r\nOK\r\n")
            with raises(ATTimeoutError):
                await ch.command(b"AT+HTTPREAD", 30, counted=b"+HTTPREAD:")
            rest.set()
            await events.wait(2)
            assert events.items == [(EV_UNSOLICITED, b"+HTTPREAD: 10"), (EV_UNSOLICITED, b"OK")]
            assert await ch.command(b"AT", 500) == [b"OK"]
            assert m.commands == [b"AT+HTTPREAD", b"AT+CSQ", b"AT"]
