"""Configuration loading and validation (firmware/config.py) on both runtimes."""

import json

import config
from config import ConfigError
from ptest import raises

MINIMAL = {"product_key": "a1B2c3D4e5F", "device_secret": "s3cr3t"}


def with_(**changes):
    raw = dict(MINIMAL)
    raw.update(changes)
    return raw


def test_minimal_config_gets_defaults():
    cfg = config.validate(MINIMAL)
    assert cfg["auth"] == "direct" and cfg["tls"] is True
    assert cfg["signmethod"] == "hmacsha256" and cfg["keepalive_s"] == 300
    assert cfg["device_name"] == "" and cfg["region"] == "cn-shanghai"
    assert cfg["uart"]["baud"] == 115200 and cfg["uart"]["id"] is None
    assert cfg["pins"] == {"pwrkey": None, "led": None}


def test_each_fault_names_its_field():
    cases = (
        ({"device_secret": "x"}, "product_key", "required"),
        (with_(keepalive_s=20), "keepalive_s", "30..1200"),
        (with_(keepalive_s="300"), "keepalive_s", "int expected"),
        (with_(tls=1), "tls", "bool expected"),
        (with_(port=True), "port", "int expected"),
        (with_(auth="magic"), "auth", "one of direct, http, dynreg"),
        (with_(signmethod="md5"), "signmethod", "one of"),
        (with_(product_key='a"b'), "product_key", "printable ASCII"),
        (with_(device_name="dev one"), "device_name", "printable ASCII"),
        (with_(colour="red"), "colour", "unknown field"),
        (with_(uart={"baud": 300}), "uart.baud", "9600..921600"),
        (with_(uart={"speed": 9600}), "uart.speed", "unknown field"),
        (with_(pins={"led": "2"}), "pins.led", "int expected"),
        ({"product_key": "pk"}, "device_secret", "required for auth direct"),
        ({"product_key": "pk", "auth": "dynreg"}, "product_secret", "required for auth dynreg"),
        (with_(auth="http", tls=False), "tls", "TLS only"),
        ([1, 2], "(top level)", "JSON object"),
    )
    for raw, field, message in cases:
        with raises(ConfigError, match=message) as caught:
            config.validate(raw)
        assert caught.value.field == field, (field, caught.value.field)
        assert str(caught.value).startswith("config.json: " + field + ": ")


def test_error_message_never_contains_the_secret():
    with raises(ConfigError) as caught:
        config.validate(with_(device_secret="top secret value"))
    assert "top secret" not in str(caught.value)


def test_load_reads_a_file_and_reports_bad_json(tmp="ptest_config_tmp.json"):
    import os

    with open(tmp, "w") as f:
        f.write(json.dumps(with_(auth="http", telemetry_interval_s=10)))
    try:
        cfg = config.load(tmp)
        assert cfg["auth"] == "http" and cfg["telemetry_interval_s"] == 10
        with open(tmp, "w") as f:
            f.write("{broken")
        with raises(ConfigError, match="not valid JSON"):
            config.load(tmp)
    finally:
        os.remove(tmp)
    with raises(ConfigError, match="cannot read"):
        config.load(tmp)


def test_what_validates_can_be_carried_into_the_modules_commands():
    # Issue "never stranded", defect 7: an APN or MQTT host the driver refuses at every
    # bring-up must be refused here, naming the field.
    base = {"product_key": "a1B2c3D4e5F", "device_name": "d", "device_secret": "s"}
    for field, value in (
        ("apn", 'cm"net'),
        ("apn", "cm\x01net"),
        ("apn", "a" * 51),
        ("region", "r" * 240),
        ("endpoint", "e" * 257),
    ):
        raw = dict(base)
        raw[field] = value
        with raises(ConfigError) as err:
            config.validate(raw)
        assert err.value.field == field, (field, err.value)
    raw = dict(base, apn="a" * 50, endpoint="e" * 256)
    assert config.validate(raw)["apn"] == "a" * 50
