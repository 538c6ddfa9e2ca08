"""`badges dev` (what `make run` starts): up, answers, issues a sample badge, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from badges.embedded_broker import free_port
from tests.support.cluster import wait_until


def start_dev(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path, dict[str, str]]:
    """`badges dev ARGS` in the background: (process, web port, data dir, environment)."""
    port = free_port()
    data = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGES_")}
    out = open(tmp_path / "dev.out", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "badges.cli.main", "dev", *args, "--web-port", str(port), "--data-dir", str(data)],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )
    return proc, port, data, env


def test_dev_mode_runs_the_embedded_default_and_stops_cleanly(tmp_path: Path) -> None:
    proc, port, data, env = start_dev(tmp_path)
    try:
        wait_until(lambda: proc.poll() is None and "Ctrl-C stops" in (tmp_path / "dev.out").read_text(),
                   timeout=120, interval=0.5, what="badges dev to be up")
        text = (tmp_path / "dev.out").read_text()
        assert f"http://127.0.0.1:{port}/" in text and "badges dev send-sample" in text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the broker and the worker
        signed_out = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "text/html"}, timeout=5)
        assert signed_out.status_code == 401 and "Sign in" in signed_out.text
        admin_token = next(line.split()[2] for line in text.splitlines() if line.startswith("admin token"))
        page = httpx.get(f"http://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {admin_token}"}, timeout=5)
        assert page.status_code == 200
        sent = subprocess.run(
            [sys.executable, "-m", "badges.cli.main", "dev", "send-sample", "--learner", "42", "--data-dir", str(data)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        credly = next(line.split()[1] for line in text.splitlines() if line.startswith("Credly"))
        emulator = credly.removesuffix("v1/")
        wait_until(lambda: any(b["recipient_email"] == "learner42@example.com"
                               for b in httpx.get(f"{emulator}_emulator/badges", timeout=5).json()),
                   timeout=60, what="the sample badge in the emulator")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(60) == 0
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, f"{child} left behind"
        assert not (data / "dev.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_dev_mode_with_accredible_issues_the_sample_as_an_accredible_credential(tmp_path: Path) -> None:
    proc, _, data, env = start_dev(tmp_path, "--provider", "accredible")
    try:
        wait_until(lambda: proc.poll() is None and "Ctrl-C stops" in (tmp_path / "dev.out").read_text(),
                   timeout=120, interval=0.5, what="badges dev --provider accredible to be up")
        text = (tmp_path / "dev.out").read_text()
        sent = subprocess.run(
            [sys.executable, "-m", "badges.cli.main", "dev", "send-sample", "--learner", "43", "--data-dir", str(data)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        emulator = next(line.split()[1] for line in text.splitlines() if line.startswith("Accredible")).removesuffix("v1/")
        wait_until(lambda: [c for c in httpx.get(f"{emulator}_emulator/credentials", timeout=5).json()
                            if c["recipient"]["email"] == "learner43@example.com" and c["group_id"] == 101],
                   timeout=60, what="the sample credential in the Accredible emulator")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
