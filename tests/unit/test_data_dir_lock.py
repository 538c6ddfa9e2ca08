"""A worker holds its local state directory: a second worker on the same directory refuses to
start with a clear error, instead of waiting on rocksdb's locks partition by partition."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cluster import worker_env


def test_a_second_worker_on_the_same_state_directory_refuses_to_start(tmp_path: Path) -> None:
    env = worker_env("127.0.0.1:1", "lock-test", tmp_path)  # the lock comes before any broker
    state = tmp_path / "lock-test"
    state.mkdir()
    with open(state / ".worker.lock", "a+") as held:  # the first worker
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = subprocess.run([sys.executable, "-m", "badges.cli.main", "worker"], env=env,
                                capture_output=True, text=True, timeout=60)
    assert second.returncode == 1, second.stderr
    assert "in use by another worker" in second.stderr and "BADGES_DATA_DIR" in second.stderr
    assert "Traceback" not in second.stderr


def test_the_lock_is_the_worker_s_own_and_names_its_process(tmp_path: Path) -> None:
    # run in a child process: the lock is held for the life of the process that takes it
    code = (
        "from badges.config.settings import load_settings\n"
        "from badges.workers.worker import hold_data_dir\n"
        "import fcntl, sys\n"
        "state = hold_data_dir(load_settings())\n"
        "again = open(state / '.worker.lock', 'a+')\n"
        "try:\n"
        "    fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except OSError:\n"
        "    print('held', (state / '.worker.lock').read_text().strip())\n"
    )
    env = worker_env("127.0.0.1:1", "lock-test", tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    word, pid = out.stdout.split()
    assert word == "held" and int(pid) > 0 and int(pid) != os.getpid()
    # the process ended: the directory is free again (as after a SIGKILL: the kernel drops it)
    with open(tmp_path / "lock-test" / ".worker.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
