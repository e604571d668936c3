"""The real `kubeferry tui` in a real terminal (tmux, 80x24): what a person would see.

Starts the command as a user would, drives it with keys only (send-keys) and reads the
screen back (capture-pane): the banner with the inventory path and the protected cluster,
the jobs table, `:history` with the ledger's runs, a run's detail, and `q` quitting with
exit status 0. A private tmux server (-L) keeps other sessions out of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tui._data import scenario


class Tmux:
    def __init__(self, socket: str, session: str) -> None:
        self.socket = socket
        self.session = session

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def text(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def wait_for(self, check: Callable[[str], bool], timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if check(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected:\n{shown}")
            time.sleep(0.2)


@pytest.fixture
def tmux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tmux]:
    scenario(tmp_path, monkeypatch)  # kubeferry.yaml + a ledger with runs, in tmp_path
    socket = f"kf-test-{uuid.uuid4().hex[:8]}"
    session = "tui"
    command = (
        f"cd {tmp_path} && {sys.executable} -m reconciler tui -f kubeferry.yaml; "
        "echo KUBEFERRY-EXITED-$?; sleep 60"
    )
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": "80",
        "LINES": "24",
    }
    env.pop("KUBEFERRY_LEDGER", None)
    env.pop("KUBEFERRY_INVENTORY", None)
    subprocess.run(
        [
            "tmux",
            "-L",
            socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            command,
        ],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        yield Tmux(socket, session)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False, timeout=10)
        tmux_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (tmux_dir / socket).unlink(missing_ok=True)


def _showing(*texts: str) -> Callable[[str], bool]:
    """The screen shows all of ``texts`` (a table's rows can be painted a frame after the
    line that counts them: wait for both, then look closer)."""
    return lambda shown: all(text in shown for text in texts)


def test_what_a_person_sees_in_a_real_terminal(tmux: Tmux) -> None:
    # first frame: the banner (inventory path, the protected cluster) and the jobs table
    shown = tmux.wait_for(_showing("kubeferry.yaml", "web", "db-backup", "batch", "cache"))
    lines = shown.splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    banner = lines[0]
    assert "kubeferry" in banner
    assert "kubeferry.yaml" in banner
    assert "PROTECTED: worker-2" in banner
    for job in ("web", "db-backup", "batch", "cache"):
        assert job in shown, f"job {job} not on the first screen:\n{shown}"
    assert "Synced" in shown
    assert "OutOfSync" in shown

    # `:history`: the ledger's runs, newest first, with their phases
    tmux.text(":")
    tmux.wait_for(lambda s: ":history" in s)  # the command line is open
    tmux.text("history")
    tmux.keys("Enter")
    shown = tmux.wait_for(_showing("run(s)", "Failed", "InProgress"))
    assert "12 run(s)" in shown
    assert "Phase" in shown
    assert "Kind" in shown
    assert "Failed" in shown
    assert "InProgress" in shown
    assert "PROTECTED: worker-2" in shown.splitlines()[0]  # the banner stays

    # the phase filter, keys only: / then tab twice, "fail" (at a person's pace: focus moves
    # after the key that asked for it is handled)
    for key in ("/", "Tab", "Tab"):
        tmux.keys(key)
        time.sleep(0.3)
    tmux.text("fail")
    shown = tmux.wait_for(_showing("1 run(s) matching phase", "batch"))
    assert "batch" in shown
    assert "restore" in shown
    tmux.keys("Enter")  # leave the filter for the table
    time.sleep(0.3)
    tmux.keys("Enter")  # open the run
    shown = tmux.wait_for(_showing("Issues (", "restore refused"))
    assert "restore of batch" in shown
    assert "namespace batch is terminating on worker-2" in shown
    assert "restore refused" in shown

    # Esc goes back, q quits with status 0
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "run(s)" in s)
    tmux.keys("q")
    shown = tmux.wait_for(lambda s: "KUBEFERRY-EXITED-" in s)
    assert "KUBEFERRY-EXITED-0" in shown
