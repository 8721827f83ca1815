# Freeze lib/ into a custom MicroPython firmware (FROZEN_MANIFEST; see README).
# Generated from lib/ by `.venv/bin/python -m tools.package`: do not edit.
# ruff: noqa: F821 - metadata, package and module come from MicroPython's manifest API

metadata(
    description="Aliyun IoT over an AirM2M Air724UG: AT engine, Air724 driver, Aliyun layer",
    version="0.1.0",
    license="MIT",
)
package(
    "air724",
    [
        "__init__.py",
        "bearer.py",
        "events.py",
        "http.py",
        "module.py",
        "mqtt.py",
        "text.py",
    ],
    base_path="lib",
)
package(
    "aliyun",
    [
        "__init__.py",
        "alink.py",
        "auth.py",
        "bringup.py",
        "digest.py",
        "dynreg.py",
        "login.py",
        "md5.py",
        "online.py",
        "outbox.py",
        "recovery.py",
        "services.py",
        "session.py",
        "sign.py",
        "thing.py",
        "tsl.py",
    ],
    base_path="lib",
)
package(
    "atmodem",
    [
        "__init__.py",
        "channel.py",
        "errors.py",
        "pending.py",
        "scanner.py",
    ],
    base_path="lib",
)
