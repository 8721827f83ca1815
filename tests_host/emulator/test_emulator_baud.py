"""``--baud``: paced bytes arrive intact; the benchmark script runs (no timing assertions)."""

import json
import subprocess
import sys


def test_paced_uart_keeps_every_byte(start_sim, resolve_args):
    sim = start_sim(*resolve_args, "--baud", "115200")
    assert sim.ready["baud"] == 115200
    at = sim.port()
    at.train()
    at.ok("ATE0")
    at.ok("AT+SAPBR=1,1")
    at.ok("AT+HTTPINIT")
    at.ok('AT+HTTPPARA="URL","http://plain.example.com/bytes/3000"')
    at.ok("AT+HTTPACTION=0")
    at.expect(rb"\r\n\+HTTPACTION: 0,200,3000\r\n")
    at.send("AT+HTTPREAD")
    at.expect(rb"^\r\n\+HTTPREAD: 3000\r\n")
    assert at.read_exact(3000) == bytes((i * 7 + 13) % 256 for i in range(3000))
    at.expect(rb"^\r\nOK\r\n")
    body = bytes(range(256)) * 8
    at.send(f"AT+HTTPDATA={len(body)},10000")
    at.expect(rb"^\r\nDOWNLOAD\r\n")
    at.write(body)
    at.expect(rb"^\r\nOK\r\n")
    assert sim.ctl("status")["state"]["uart"]["from_host"] > len(body)


def test_benchmark_script_reports_rates(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench.pacing", "--bytes", "1500", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["baud"] == 115200 and result["line_rate"] == 11520
    for key in ("module_to_host", "host_to_module"):
        assert result["paced"][key] > 0 and result["unpaced"][key] > 0
        assert result["ratio"][key] == result["paced"][key] / 11520
