"""The aliyun-sign CLI: installed console script and main(argv), output, exit codes."""

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import sign_cli

SCRIPT = Path(sys.executable).with_name("aliyun-sign")
PK, DN = "b0FMK1Ga5cp", "862991419835241"
GOOD = "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"  # the secret as spelled by openLuat
TYPO = "y7MTCG6Gk33Ux26bbWSpANI4Oal0bg5Q"  # as printed in the seed text (I and l swapped)
SEED_SIGN = "1eb96463ad2345b6c261e2f7cc78a7a0"
SEED = ["--product-key", PK, "--device-name", DN, "--signmethod", "hmacmd5"]
SEED += ["--client-id", DN, "--no-timestamp"]
DOC = ["--product-key", "pk", "--device-name", "device", "--device-secret", "secret"]
DOC += ["--client-id", "12345", "--timestamp", "789", "--signmethod", "hmacsha1"]
DOC_PASSWORD = "fafd82a3d602b37fb0fa8b7892f24a477f851a14"


def run(argv, capsys):
    code = sign_cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv, capsys):
    code, out, err = run(argv + ["--json"], capsys)
    return code, json.loads(out), err


def value(text, label):
    """The value printed after ``label`` in the text output."""
    for line in text.splitlines():
        if line.startswith(label + " "):
            return line[len(label) :].strip()
    raise AssertionError("no %r line in:\n%s" % (label, text))


def test_acceptance_http_auth_seed_via_console_script():
    argv = [str(SCRIPT), "http-auth", *SEED, "--device-secret", GOOD]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert value(out, "sign") == SEED_SIGN
    body = value(out, "body")
    length = int(value(out, "length").split()[0])
    assert length == len(body.encode())
    at = out.splitlines()
    i = at.index("AT+HTTPINIT")
    assert at[i : i + 8] == [
        "AT+HTTPINIT",
        'AT+HTTPPARA="URL","https://iot-auth.cn-shanghai.aliyuncs.com/auth/devicename"',
        'AT+HTTPPARA="USER_DEFINED","Content-Type: application/x-www-form-urlencoded"',
        "AT+HTTPDATA=%d,20000" % length,
        body,
        "AT+HTTPACTION=1",
        "AT+HTTPREAD",
        "AT+HTTPTERM",
    ]
    fields = dict(pair.split("=") for pair in body.split("&"))
    assert fields == {
        "productKey": PK,
        "deviceName": DN,
        "clientId": DN,
        "signmethod": "hmacmd5",
        "sign": SEED_SIGN,
        "resources": "mqtt",
    }
    assert GOOD not in out  # the secret is never echoed
    assert 'AT+MCONFIG="862991419835241","<iotId>","<iotToken>"' in at


def test_seed_typo_is_caught_by_expect_via_console_script():
    argv = [str(SCRIPT), "http-auth", *SEED, "--device-secret", TYPO, "--expect", SEED_SIGN]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert value(proc.stdout, "sign") == "93a4430caf5304c3442061eee892329b"
    assert "does not match --expect " + SEED_SIGN in proc.stderr
    assert "the device secret spelled " + GOOD + " reproduces it" in proc.stderr
    assert "position 23 I->l, position 27 l->I" in proc.stderr
    assert "mixes look-alike characters I/l/1 (positions 23, 27)" in proc.stderr
    assert "mixes look-alike characters O/0 (positions 25, 28)" in proc.stderr


def test_expect_match_exits_0_and_is_case_insensitive(capsys):
    argv = ["http-auth", *SEED, "--device-secret", GOOD, "--expect", SEED_SIGN.upper()]
    code, out, err = run(argv, capsys)
    assert code == 0
    assert "--expect matches" in err


def test_expect_json_reports_the_correction(capsys):
    argv = ["http-auth", *SEED, "--device-secret", TYPO, "--expect", SEED_SIGN]
    code, out, err = run_json(argv, capsys)
    assert code == 1
    assert out["expect"]["match"] is False
    assert out["expect"]["spelling"] == GOOD
    assert out["expect"]["total"] == 3 * 2 * 3 * 2 - 1
    assert len(out["warnings"]) == 2
    assert TYPO not in json.dumps({k: v for k, v in out.items() if k != "expect"})


def test_expect_without_a_fitting_spelling(capsys):
    argv = ["mqtt", *DOC, "--expect", "00" * 20]
    code, out, err = run(argv, capsys)
    assert code == 1
    assert "has no look-alike characters to vary" in err
    code, out, err = run(["http-auth", *SEED, "--device-secret", TYPO, "--expect", "ab"], capsys)
    assert code == 1
    assert "no look-alike spelling of the device secret reproduces it (tried 35 of 35)" in err


def test_expect_search_is_capped(capsys):
    secret = "Il0O" * 8  # 3**16 * 2**16 spellings
    argv = ["mqtt", *DOC[:4], "--device-secret", secret, "--expect", "ab"]
    code, out, err = run(argv, capsys)
    assert code == 1
    total = 3**16 * 2**16 - 1
    expected = "tried %d of %d, search capped at %d" % (sign_cli.MAX_VARIANTS, total, 20000)
    assert expected in err


def test_lookalike_helpers():
    assert sign_cli.mixed_lookalikes("b0FMK1Ga5cp") == []  # one of each group: not mixed
    assert sign_cli.mixed_lookalikes("example1") == [("Il1", [6, 8])]
    total, variants = sign_cli.lookalike_variants("aIb0")
    spellings = list(variants)
    assert total == len(spellings) == 5
    assert spellings[:3] == ["alb0", "a1b0", "aIbO"]  # single changes come first
    assert sorted(spellings[3:]) == ["a1bO", "albO"]


def test_mqtt_text_tcp_uses_mipstart(capsys):
    code, out, err = run(["mqtt", *DOC, "--tcp"], capsys)
    assert code == 0
    assert value(out, "clientId") == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    assert value(out, "username") == "device&pk"
    assert value(out, "password") == DOC_PASSWORD
    assert value(out, "sign content") == "clientId12345deviceNamedeviceproductKeypktimestamp789"
    lines = out.splitlines()
    assert lines[-3:] == [
        'AT+MCONFIG="12345|securemode=3,signmethod=hmacsha1,timestamp=789|","device&pk",'
        '"%s"' % DOC_PASSWORD,
        'AT+MIPSTART="pk.iot-as-mqtt.cn-shanghai.aliyuncs.com","1883"',
        "AT+MCONNECT=1,300",
    ]
    assert "plain TCP" in err
    assert "secret" not in out


def test_mqtt_json_tls_defaults_and_endpoint(capsys):
    argv = ["mqtt", "--product-key", "pk", "--device-name", "dev", "--device-secret", "s"]
    code, out, err = run_json(argv + ["--host", "iot-1.mqtt.iothub.aliyuncs.com"], capsys)
    assert code == 0 and err == ""
    assert out["signmethod"] == "hmacsha256" and out["securemode"] == 2 and out["tls"]
    assert out["at"][1] == 'AT+SSLMIPSTART="iot-1.mqtt.iothub.aliyuncs.com",1883'
    ts = out["clientId"].split("timestamp=")[1].rstrip("|")
    assert abs(int(ts) - time.time() * 1000) < 60_000  # default: now, in ms
    assert out["signContent"].endswith("timestamp" + ts)
    argv += ["--port", "8883", "--no-timestamp", "--keepalive", "1200"]
    code, out, err = run_json(argv, capsys)
    assert out["clientId"] == "dev|securemode=2,signmethod=hmacsha256|"
    assert out["at"][1:] == [
        'AT+SSLMIPSTART="pk.iot-as-mqtt.cn-shanghai.aliyuncs.com",8883',
        "AT+MCONNECT=1,1200",
    ]
    assert "s" not in out.values()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mqtt", *DOC, "--keepalive", "29"], "--keepalive: must be 30..1200 s"),
        (["mqtt", *DOC, "--tcp", "--port", "8883"], "--port: 8883 is TLS only"),
        (["mqtt", *DOC, "--client-id", "x" * 65], "--client-id: longer than 64 characters"),
        (["mqtt", *DOC, "--client-id", 'a"b'], "--client-id: '\"' cannot be placed in a"),
        (["mqtt", *DOC, "--client-id", "a\\b"], "--client-id: '\\\\' cannot be placed"),
        (["mqtt", *DOC, "--timestamp", "soon"], "--timestamp: must be decimal digits"),
        (["mqtt", *DOC[:4], "--device-secret", "s\u00e9"], "--device-secret: must be printable"),
        (["http-auth", *SEED, "--device-secret", ""], "--device-secret: must be a non-empty"),
        (["dynreg", *DOC[:4], "--product-secret", "p", "--instance-id", "i"], "--mqtt"),
    ],
)
def test_bad_input_exits_2_naming_the_field(capsys, argv, message):
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    last = err.splitlines()[-1]  # after any look-alike/TCP warnings
    assert last.startswith("aliyun-sign: error: ") and message in last, err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["mqtt", "--product-key", "pk"],
        ["mqtt", *DOC, "--signmethod", "md5"],
        ["mqtt", *DOC, "--no-timestamp"],  # DOC already has --timestamp
        ["mqtt", *DOC, "--region", "cn-shanghai", "--host", "h"],
        ["http-auth", *SEED, "--device-secret", "s", "--tcp"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        sign_cli.main(argv)
    assert caught.value.code == 2
    assert "usage: aliyun-sign" in capsys.readouterr().err


def test_usage_error_exit_code_of_console_script():
    proc = subprocess.run([str(SCRIPT), "mqtt"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "the following arguments are required" in proc.stderr


def test_secret_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret\n"))
    argv = ["mqtt", *DOC[:4], "--device-secret", "-", *DOC[6:]]
    code, out, err = run(argv, capsys)
    assert code == 0
    assert value(out, "password") == DOC_PASSWORD
    monkeypatch.setattr(sys, "stdin", io.StringIO(TYPO + "\n"))  # warned like an argument
    code, out, err = run(["http-auth", *SEED, "--device-secret", "-"], capsys)
    assert "--device-secret mixes look-alike characters I/l/1" in err
    assert TYPO not in out + err


def test_dynreg_https(capsys):
    argv = ["dynreg", "--product-key", "a1X2bEnP82z", "--device-name", "example1"]
    argv += ["--product-secret", "EvOafYuTx7hWwV5E", "--random", "8Ygb7ULYh53B6OA"]
    code, out, err = run_json(argv, capsys)
    assert code == 0
    sign = "dd67b3048673f3f5959c5a755707028fe17917f5e41cdb9fcceb33c341cbf164"
    assert out["sign"] == sign and out["transport"] == "https"
    assert out["url"] == "https://iot-auth.cn-shanghai.aliyuncs.com/auth/register/device"
    assert out["length"] == len(out["body"]) and "&sign=" + sign + "&" in out["body"]
    assert out["at"][3] == "AT+HTTPDATA=%d,20000" % out["length"]
    assert "EvOafYuTx7hWwV5E" not in json.dumps(out)
    # A look-alike typo in the product secret (O -> 0) is found by --expect.
    typo = ["--product-secret", "Ev0afYuTx7hWwV5E"]
    code, out, err = run(argv[:5] + typo + argv[7:] + ["--expect", sign], capsys)
    assert code == 1
    assert "the product secret spelled EvOafYuTx7hWwV5E reproduces it" in err


def test_dynreg_mqtt_random_default(capsys):
    argv = ["dynreg", "--product-key", "pk", "--device-name", "dn", "--product-secret", "ps"]
    code, out, err = run_json(argv + ["--mqtt", "register"], capsys)
    assert code == 0
    assert len(out["random"]) == 15 and out["random"].isalnum()
    assert out["clientId"] == (
        "dn.pk|securemode=2,authType=register,random=%s,signmethod=hmacsha256|" % out["random"]
    )
    assert out["replyTopic"] == "/ext/register"
    assert out["at"][1] == 'AT+SSLMIPSTART="pk.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883'


def test_at_quote():
    assert sign_cli.at_quote("f", "a|b,c&d") == '"a|b,c&d"'
    for bad in ('a"b', "a\rb", "a\nb", "a\\22"):
        with pytest.raises(sign_cli.UsageError, match="^f: "):
            sign_cli.at_quote("f", bad)


@pytest.mark.parametrize("spelling", [["--device-name", "-abc"], ["--device-name=-abc"]])
def test_a_value_may_start_with_a_dash(capsys, spelling):
    # "-abc" is a valid DeviceName; argparse alone takes it for an unknown option.
    argv = ["mqtt", "--product-key", "pk", *spelling, "--device-secret", "s", "--no-timestamp"]
    code, out, err = run_json(argv, capsys)
    assert code == 0, err
    assert out["username"] == "-abc&pk"
    assert out["clientId"].startswith("-abc|securemode=2,")


def test_a_missing_value_is_still_a_usage_error(capsys):
    # The token after --device-name is one of the CLI's options: it stays an option.
    with pytest.raises(SystemExit) as exit_info:
        sign_cli.main(["mqtt", "--product-key", "pk", "--device-name", "--json"])
    assert exit_info.value.code == 2
    assert "--device-name: expected one argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "argv"),
    [
        ("--product-key", ["--product-key", 'p"k', "--device-name", "d"]),
        ("--device-name", ["--product-key", "pk", "--device-name", "d\\n"]),
    ],
)
def test_a_quote_is_refused_under_the_option_the_user_typed(capsys, option, argv):
    code, out, err = run(["mqtt", *argv, "--device-secret", "s"], capsys)
    assert code == 2 and out == ""
    last = err.splitlines()[-1]
    assert last.startswith("aliyun-sign: error: %s: " % option), err
    assert "username" not in err
