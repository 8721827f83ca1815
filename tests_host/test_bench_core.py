"""The pure parts of ``make bench`` (tools/bench/core.py): no process, no clock, no timing."""

import time

import pytest

from tools.bench import core


def test_parse_size_reads_heapsize_spellings():
    assert core.parse_size("128k") == 131072
    assert core.parse_size("2M") == 2 * 1024 * 1024
    assert core.parse_size(" 4096 ") == 4096
    with pytest.raises(ValueError):
        core.parse_size("12 kb")


def test_heap_steps_include_both_ends():
    assert core.heap_steps(48, 80, 8) == [48, 56, 64, 72, 80]
    assert core.heap_steps(48, 84, 8) == [48, 56, 64, 72, 80, 84]
    with pytest.raises(ValueError):
        core.heap_steps(64, 48, 8)


@pytest.mark.parametrize("threshold", [48, 56, 100, 152, 256])
def test_bisection_finds_the_smallest_passing_size(threshold):
    steps = core.heap_steps(48, 256, 8)
    smallest, trials = core.bisect_smallest(steps, lambda size: size >= threshold)
    assert smallest == min(s for s in steps if s >= threshold)
    assert trials[0] == (256, True)  # the largest first: is there an answer at all?
    assert len(trials) <= 1 + 5  # 27 sizes: at most ceil(log2(27)) more runs
    assert all(passed == (size >= threshold) for size, passed in trials)


def test_bisection_reports_none_when_even_the_largest_fails():
    smallest, trials = core.bisect_smallest([48, 56, 64], lambda size: False)
    assert smallest is None and trials == [(64, False)]


def test_mpub_wire_bytes_count_the_escaped_command_and_the_answers():
    tx, rx = core.mpub_wire_bytes("/pk/dn/user/update", '{"a":1}', 0)
    assert tx == len(b'AT+MPUB="/pk/dn/user/update",0,0,"{\\22a\\22:1}"\r')
    assert rx == len(b"\r\nOK\r\n")
    tx1, rx1 = core.mpub_wire_bytes("/pk/dn/user/update", '{"a":1}', 1)
    assert tx1 == tx and rx1 == len(b"\r\nOK\r\n\r\nPUBACK\r\n")


def test_publish_bound_is_the_line_time_of_the_round_trip():
    # 1152 bytes at 115200 baud (8N1) take exactly 0.1 s.
    assert core.line_time_s(1152, 115200) == pytest.approx(0.1)
    assert core.publish_bound(1000, 152, 115200) == pytest.approx(10.0)
    assert core.publish_bound(1000, 152, 115200, wait_s=0.1) == pytest.approx(5.0)


def test_percentiles_use_the_nearest_rank():
    values = list(range(1, 101))
    assert core.percentile(values, 99) == 99
    assert core.percentile(values, 100) == 100
    assert core.percentile([5.0], 99) == 5.0
    assert core.median([3, 1, 2]) == 2
    assert core.median([4, 1, 2, 3]) == 2.5


def test_cpu_ticks_reads_utime_and_stime_after_a_command_name_with_spaces():
    fields = ["S"] + ["0"] * 10 + ["123", "45"] + ["0"] * 30
    stat = "4242 (micro python) " + " ".join(fields)
    assert core.cpu_ticks(stat) == 168


def test_schedstat_gives_nanoseconds_on_the_cpu():
    assert core.schedstat_ns("207334253 52074032 616\n") == 207334253


def test_transcript_times_are_placed_on_the_nearest_day():
    now = time.mktime((2026, 5, 9, 23, 59, 59, 0, 0, -1))
    after_midnight = core.transcript_epoch("00:00:01.250", now)
    assert after_midnight - now == pytest.approx(2.25)
    same_day = core.transcript_epoch("23:59:58.500", now)
    assert same_day - now == pytest.approx(-0.5)


def test_parse_atmodem_reads_vm_atmodem_output():
    output = "\n".join(
        [
            "runtime: micropython",
            "bytes allocated per URC line dispatched: 35.2",
            "  of which the shim's readinto: 2.9",
            "bytes allocated per AT->OK round trip:   736.0",
            "  of which the shim's write/readinto: 192.0",
            "time per URC line: 6 us",
            "time per round trip: 32 us",
        ]
    )
    assert core.parse_atmodem(output) == {
        "urc_bytes": 35.2,
        "urc_shim_bytes": 2.9,
        "command_bytes": 736.0,
        "command_shim_bytes": 192.0,
        "urc_us": 6.0,
        "command_us": 32.0,
    }


def test_parse_bench_line_finds_the_json_of_a_tagged_line():
    text = 'x\nbench throughput {"qos": 0, "count": 3}\n'
    assert core.parse_bench_line(text, "throughput") == {"qos": 0, "count": 3}
    assert core.parse_bench_line(text, "latency") is None


def test_render_shows_every_figure_with_unit_ratio_and_command():
    figures = [
        {
            "id": 1,
            "title": "Heap",
            "command": "python -m tools.bench heap",
            "rows": [core.row("smallest heap", 152, "KiB", "128 KiB budget", 152 / 128, "6 runs")],
        },
        {"id": 5, "title": "Idle cost", "command": "python -m tools.bench idle", "rows": []},
    ]
    figures[1]["error"] = "BenchError: no cloud"
    text = "\n".join(core.render(figures))
    assert "1. Heap" in text and "152" in text and "KiB" in text and "1.19" in text
    assert "128 KiB budget (6 runs)" in text
    assert "reproduce: python -m tools.bench heap" in text
    assert "5. Idle cost" in text and "not measured" in text and "BenchError: no cloud" in text
    table = core.markdown(figures)
    assert table[2].startswith("| 1. Heap | smallest heap | 152 | KiB | 1.19 |")


def test_values_are_formatted_for_reading():
    assert core.fmt_value(48700) == "48,700"
    assert core.fmt_value(1409.2) == "1,409"
    assert core.fmt_value(53.94) == "53.9"
    assert core.fmt_value(2.873) == "2.87"
    assert core.fmt_value(None) == "n/a"


def test_a_ratio_above_a_physical_bound_cannot_be_printed():
    with pytest.raises(core.BoundError):
        core.bound_row("QoS0", 53.9, "publishes/s", 52.4, "UART bound")
    with pytest.raises(core.BoundError):
        core.bound_row("boot", 1.0, "s", 1.5, "module latencies", lower=True)
    assert core.bound_row("boot", 3.0, "s", 1.5, "x", lower=True)["ratio"] == 0.5
    assert core.aim_row("heap", 96, "KiB", 128, "budget")["ratio"] == 0.75
    assert core.aim_row("slope", 600, "B", 0, "aim 0 B")["ratio"] is None


def test_boot_window_sums_the_profile_latency_of_each_waiting_command():
    from tools.bench import fig_boot
    from tools.emulator.profiles import PROFILES

    p = PROFILES["realistic"]
    commands = [
        "AT+SAPBR=1,1",
        "productKey=pk&sign=abcAT+HTTPACTION=1",  # after an AT+HTTPDATA body: no line end
        'AT+SSLMIPSTART="pk.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883',
        "AT+MCONNECT=1,300",
        'AT+MSUB="/sys/pk/dn/thing/#",1',
        'AT+MSUB="/ext/ntp/pk/dn/response",1',
        'AT+MPUB="/sys/pk/dn/thing/event/property/post",1,0,"{}"',
        'AT+MPUB="/pk/dn/user/update",0,0,"{}"',  # QoS0: no wait
        "AT+CSQ",
    ]
    total, kinds = fig_boot.module_latency(commands)
    assert kinds == {"bearer": 1, "http": 1, "connect": 1, "connack": 1, "suback": 2, "puback": 1}
    assert total == pytest.approx(
        p.bearer + p.http + p.connect + p.connack + 2 * p.suback + p.puback
    )
