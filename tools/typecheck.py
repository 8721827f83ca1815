"""Type-check lib/ and firmware/ against the MicroPython stubs of each target port.

``python -m tools.typecheck [PORT…]`` installs the pinned stubs of each port into
``.venv/stubs/<port>`` (once), derives a configuration from the repository's pyrightconfig.json
(the editor's, set for ESP32) by swapping the stub folder and the board modules of other ports,
and runs basedpyright. Exits non-zero when any port reports an error.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / ".venv" / "stubs"
STDLIB_STUBS = "micropython-stdlib-stubs==1.29.0.post2"  # MicroPython's own typeshed subset
BOARDS = ROOT / "firmware" / "boards"

# port: (stub package pinned to the MicroPython release we target, its board modules); mcu.py
# and watchdog.py are the microcontrollers' shared half, checked against each one's machine
# module (the unix port's has no WDT: there only the vboard's stand-in drives watchdog.py).
PORTS = {
    "esp32": ("micropython-esp32-stubs==1.29.0.post1", ("esp32.py", "mcu.py", "watchdog.py")),
    "rp2": ("micropython-rp2-stubs==1.29.0.post1", ("rp2.py", "mcu.py", "watchdog.py")),
    "unix": ("micropython-unix-stubs==1.29.0.post1", ("unix.py",)),
}


def install_stubs(port: str) -> Path:
    """Install the port's stubs into their own folder unless the same pins are already there."""
    folder = STUBS / port
    pins = [PORTS[port][0], STDLIB_STUBS]
    marker = folder / ".pins"
    if marker.exists() and marker.read_text().split() == pins:
        return folder
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*cmd, "--upgrade", "--target", str(folder), *pins], check=True)
    marker.write_text("\n".join(pins))
    return folder


def port_config(port: str, stubs: Path) -> dict:
    config = json.loads((ROOT / "pyrightconfig.json").read_text())
    config.pop("//", None)
    own = PORTS[port][1]
    others = {board for _, boards in PORTS.values() for board in boards if board not in own}
    config["exclude"] = [str(BOARDS / board) for board in sorted(others)]
    config["include"] = [str(ROOT / path) for path in config["include"]]
    config["extraPaths"] = [str(ROOT / path) for path in config["extraPaths"]]
    config["stubPath"] = config["typeshedPath"] = str(stubs)
    return config


def check(port: str) -> bool:
    stubs = install_stubs(port)
    config_file = stubs / "pyrightconfig.json"
    config_file.write_text(json.dumps(port_config(port, stubs), indent=2))
    print(f"typecheck [{port}]", flush=True)
    checker = Path(sys.executable).with_name("basedpyright")
    return subprocess.run([str(checker), "-p", str(config_file)]).returncode == 0


def main(argv=None) -> None:
    ports = (argv if argv is not None else sys.argv[1:]) or list(PORTS)
    unknown = [port for port in ports if port not in PORTS]
    if unknown:
        raise SystemExit(f"unknown port {unknown[0]}; choose from {', '.join(PORTS)}")
    failed = [port for port in ports if not check(port)]
    if failed:
        raise SystemExit(f"typecheck failed for: {', '.join(failed)}")


if __name__ == "__main__":
    main()
