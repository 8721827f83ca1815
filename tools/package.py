"""Generate the MicroPython packaging of lib/: package.json (mip) and manifest.py (freezing).

``python -m tools.package`` rewrites both files at the repository root from the lib/ tree and
the version in pyproject.toml; ``--check`` only reports whether they are up to date (exit 1).

- package.json: ``urls`` maps each installed path (relative to the target, ``/lib`` by default)
  to its source relative to package.json, so ``mip.install("github:OWNER/REPO")`` or
  ``mpremote mip install URL/package.json`` fetches lib/ from wherever the repository is served.
- manifest.py: ``package(name, files, base_path="lib")`` per package and ``module()`` per
  top-level module of lib/, with every file named, for ``FROZEN_MANIFEST`` builds.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = ".venv/bin/python -m tools.package"
DESCRIPTION = "Aliyun IoT over an AirM2M Air724UG: AT engine, Air724 driver, Aliyun layer"


def version(root: Path = ROOT) -> str:
    text = (root / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("pyproject.toml: no [project] version")
    return match.group(1)


def lib_files(root: Path = ROOT) -> list[str]:
    """Every .py of lib/, relative to lib/, sorted (what the package installs)."""
    lib = root / "lib"
    return sorted(
        path.relative_to(lib).as_posix()
        for path in lib.rglob("*.py")
        if "__pycache__" not in path.parts and not path.name.startswith(".")
    )


def package_json(root: Path = ROOT) -> str:
    # One [target, source] pair a line, so diffs show added and removed files plainly.
    urls = ",\n".join("    " + json.dumps([name, "lib/" + name]) for name in lib_files(root))
    return '{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (urls, json.dumps(version(root)))


def manifest_py(root: Path = ROOT) -> str:
    packages, modules = {}, []
    for name in lib_files(root):
        top, _, rest = name.partition("/")
        if rest:
            packages.setdefault(top, []).append(rest)
        else:
            modules.append(name)
    lines = [
        "# Freeze lib/ into a custom MicroPython firmware (FROZEN_MANIFEST; see README).",
        f"# Generated from lib/ by `{REGENERATE}`: do not edit.",
        "# ruff: noqa: F821 - metadata, package and module come from MicroPython's manifest API",
        "",
        "metadata(",
        f'    description="{DESCRIPTION}",',
        f'    version="{version(root)}",',
        '    license="MIT",',
        ")",
    ]
    for top, files in sorted(packages.items()):
        lines += ["package(", f'    "{top}",', "    ["]
        lines += [f'        "{name}",' for name in files]
        lines += ["    ],", '    base_path="lib",', ")"]
    lines += [f'module("{name}", base_path="lib")' for name in modules]
    return "\n".join(lines) + "\n"


OUTPUTS = {"package.json": package_json, "manifest.py": manifest_py}


def stale(root: Path = ROOT) -> list[str]:
    """The generated files whose committed content differs from lib/ now."""
    names = []
    for name, make in OUTPUTS.items():
        path = root / name
        if not path.is_file() or path.read_text() != make(root):
            names.append(name)
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        if names:
            print(f"{', '.join(names)} out of date with lib/: run `{REGENERATE}`", file=sys.stderr)
            return 1
        print("package.json and manifest.py match lib/")
        return 0
    for name, make in OUTPUTS.items():
        (ROOT / name).write_text(make())
    print(f"wrote package.json and manifest.py ({len(lib_files())} files of lib/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
