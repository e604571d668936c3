"""Missing prerequisites give one clear line saying what is missing and how to fix it.

The machine is replaced by a `Host` with injected probes (a fake os-release, no root, a
full disk...), so nothing here touches the real system.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.errors import KubeferryError, PrerequisiteError
from reconciler.sandbox import Host, Sandbox, SilentReporter
from reconciler.sandbox._prerequisites import check_prerequisites, ensure_packages

BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'
TRIXIE = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_CODENAME=trixie\n'
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n'
GB = 1024**3


class FakeApt:
    """Records apt commands; 'installs' packages when apt-get install succeeds."""

    def __init__(self, installed: set[str], *, exit_code: int = 0) -> None:
        self.installed = installed
        self.exit_code = exit_code
        self.commands: list[list[str]] = []

    def run(self, command: Sequence[str], log: Path) -> int:
        self.commands.append(list(command))
        if self.exit_code == 0 and "install" in command:
            self.installed.update(command[command.index("-y") + 1 :])
        return self.exit_code


def fake_host(
    tmp_path: Path,
    *,
    os_release: str | None = BOOKWORM,
    root: bool = True,
    sudo: bool = False,
    installed: set[str] | None = None,
    free_bytes: int = 50 * GB,
    apt: FakeApt | None = None,
    modules: bool = True,
) -> Host:
    release = tmp_path / "os-release"
    if os_release is not None:
        release.write_text(os_release)
    packages = (
        installed
        if installed is not None
        else {"etcd-server", "openssl", "golang-go", "rsync", "make"}
    )
    runner = apt or FakeApt(packages)
    return Host(
        os_release=release,
        is_root=lambda: root,
        has_passwordless_sudo=lambda: sudo,
        package_installed=lambda package: package in runner.installed,
        disk_free=lambda path: free_bytes,
        run_command=runner.run,
        module_available=lambda name: modules,
    )


def check(host: Host, tmp_path: Path, *, build: bool = True) -> None:
    check_prerequisites(
        host,
        build=build,
        cache_dir=tmp_path / "cache",
        sandbox_dir=tmp_path / "sandbox",
        apt_log=tmp_path / "apt.log",
        reporter=SilentReporter(),
    )


def assert_one_line(error: KubeferryError) -> str:
    text = str(error)
    assert "\n" not in text
    assert error.hint, "every prerequisite error says how to fix it"
    return text


def test_a_complete_bookworm_machine_passes(tmp_path: Path) -> None:
    check(fake_host(tmp_path), tmp_path)


def test_not_debian(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError) as error:
        check(fake_host(tmp_path, os_release=UBUNTU), tmp_path, build=False)
    text = assert_one_line(error.value)
    assert "needs Debian" in text
    assert "Ubuntu 24.04 LTS" in text


def test_no_os_release(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError) as error:
        check(fake_host(tmp_path, os_release=None), tmp_path)
    assert "os-release is missing" in assert_one_line(error.value)


def test_building_needs_bookworm_but_running_does_not(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError) as error:
        check(fake_host(tmp_path, os_release=TRIXIE), tmp_path, build=True)
    assert "Debian 12 (bookworm)" in assert_one_line(error.value)
    check(fake_host(tmp_path, os_release=TRIXIE), tmp_path, build=False)


def test_not_enough_disk_for_the_build(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError) as error:
        check(fake_host(tmp_path, free_bytes=1 * GB), tmp_path, build=True)
    text = assert_one_line(error.value)
    assert "not enough free disk space to build Kubernetes" in text
    assert "1.0 GB free" in text
    assert "3.0 GB needed" in text
    check(fake_host(tmp_path, free_bytes=1 * GB), tmp_path, build=False)  # enough to run


def test_missing_packages_without_root_or_sudo(tmp_path: Path) -> None:
    host = fake_host(tmp_path, root=False, sudo=False, installed={"openssl"})
    with pytest.raises(PrerequisiteError) as error:
        check(host, tmp_path)
    text = assert_one_line(error.value)
    assert "missing Debian packages: etcd-server golang-go rsync make" in text
    assert "sudo apt-get install -y etcd-server golang-go rsync make" in text


def test_missing_packages_are_installed_as_root(tmp_path: Path) -> None:
    apt = FakeApt({"openssl", "make"})
    installed = ensure_packages(
        fake_host(tmp_path, apt=apt), ["etcd-server", "openssl", "make"],
        log=tmp_path / "apt.log", reporter=SilentReporter(),
    )  # fmt: skip
    assert installed == ["etcd-server"]
    assert apt.commands == [
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update"],
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "etcd-server"],
    ]


def test_missing_packages_are_installed_with_passwordless_sudo(tmp_path: Path) -> None:
    apt = FakeApt(set())
    host = fake_host(tmp_path, root=False, sudo=True, apt=apt)
    ensure_packages(host, ["etcd-server"], log=tmp_path / "apt.log", reporter=SilentReporter())
    assert all(command[:2] == ["sudo", "-n"] for command in apt.commands)


def test_failing_apt_names_the_command_and_the_log(tmp_path: Path) -> None:
    apt = FakeApt(set(), exit_code=100)
    with pytest.raises(KubeferryError) as error:
        ensure_packages(
            fake_host(tmp_path, apt=apt), ["etcd-server"], log=tmp_path / "apt.log",
            reporter=SilentReporter(),
        )  # fmt: skip
    text = assert_one_line(error.value)
    assert "`apt-get update` failed (exit 100)" in text
    assert str(tmp_path / "apt.log") in text


def test_missing_moto(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError) as error:
        check(fake_host(tmp_path, modules=False), tmp_path)
    assert "pip install 'kubeferry[sandbox]'" in assert_one_line(error.value)


def test_sandbox_up_stops_at_the_first_missing_prerequisite(tmp_path: Path) -> None:
    host = fake_host(tmp_path, os_release=UBUNTU)
    sandbox = Sandbox(tmp_path / "box", cache_dir=tmp_path / "cache", host=host)
    with pytest.raises(PrerequisiteError, match="needs Debian"):
        sandbox.up(["solo"])
    assert sandbox.status().exists is False  # nothing recorded, nothing started


def test_host_is_injectable_per_probe(tmp_path: Path) -> None:
    # dataclasses.replace keeps the real probes for everything not overridden
    host = dataclasses.replace(Host(), os_release=tmp_path / "absent")
    with pytest.raises(PrerequisiteError, match="absent is missing"):
        check(host, tmp_path, build=False)
