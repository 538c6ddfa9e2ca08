"""Make sure the headless browser of the browser tests is there: Debian's ``chromium``.

Run by ``make test`` before pytest (``python -m tests.setup_browser``). Playwright drives the
system Chromium at /usr/bin/chromium; its own browser downloads are never used. Quick and
idempotent when Chromium is already installed; otherwise installs it with apt-get
(non-interactive, after ``apt-get update``). Exits non-zero with a clear message when it cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PACKAGE = "chromium"


def _version() -> str:
    try:
        out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(version unknown: {exc})"
    return (out.stdout or out.stderr).strip() or "(version unknown)"


def _apt(*args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", *args]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise RuntimeError("installing chromium needs root (or sudo), and neither is available")
        command = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive", *command]
    print(f"setup_browser: running {' '.join(command)}", flush=True)
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"`{' '.join(command)}` exited {proc.returncode}:\n{tail}")


def ensure_chromium() -> str:
    """Return what was done; raise RuntimeError with a readable message on failure."""
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} present: {_version()}"
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{CHROMIUM} is missing and apt-get is not available; install Chromium "
                           f"so that {CHROMIUM} exists")
    _apt("update", "-q")
    _apt("install", "-y", "-q", "--no-install-recommends", PACKAGE)
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed {PACKAGE} but {CHROMIUM} is still missing")
    return f"installed Debian's {PACKAGE}: {_version()}"


def main() -> int:
    try:
        print(f"setup_browser: {ensure_chromium()}")
    except RuntimeError as exc:
        print(f"setup_browser: error: {exc}", file=sys.stderr)
        print("setup_browser: the browser test (tests/integration/test_browser.py) cannot run "
              "without it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
