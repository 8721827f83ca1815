"""Versions of the application to update to, for demos, tests and the benchmark (OTA).

``make_version(out, "1.1.0")`` copies the ``.mpy`` build (``make mpy``) to ``out`` with
``firmware/app.py`` compiled again at ``VERSION = "1.1.0"``; ``append`` adds source lines to
modules first (``{"firmware/app.py": 'raise RuntimeError("boom")'}``: a version that fails at
import). ``aliyun-local ota package build --from out`` then makes its package.
"""

import shutil
import subprocess
from pathlib import Path

from tools import mpy_build

ROOT = mpy_build.ROOT


def make_version(out, version, append=None, build=None):
    """A build of ``version`` in ``out`` (from ``build``, default build/); returns ``out``."""
    build = Path(build or mpy_build.BUILD)
    if build == mpy_build.BUILD:
        mpy_build.build()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(build, out)
    sources = {"firmware/app.py": ""}
    sources.update(append or {})
    for rel, extra in sources.items():
        text = (ROOT / rel).read_text()
        if rel == "firmware/app.py":
            text = text.replace('VERSION = "1.0.0"', 'VERSION = "%s"' % version, 1)
        src = out / "src" / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(text + ("\n" + extra + "\n" if extra else ""))
        dst = (out / rel).with_suffix(".mpy")
        name = str(Path(rel).relative_to(rel.split("/")[0]))
        cmd = [mpy_build.mpy_cross(), "-o", str(dst), "-s", name, str(src)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    shutil.rmtree(out / "src")
    return out
