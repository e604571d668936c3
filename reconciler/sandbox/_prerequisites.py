"""Checks that this machine can build and run the sandbox, installing Debian packages if allowed.

Every probe of the machine goes through :class:`Host`, so tests can inject conditions (a
fake os-release, no root, a full disk) without touching the real system.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import KubeferryError, PrerequisiteError
from reconciler.sandbox._progress import Reporter

RUNTIME_PACKAGES = ("etcd-server", "openssl")
# reflect2 >= 1.0.2 replaces Kubernetes 1.20's vendored 1.0.1, which crashes the apiserver
# (json-iterator "fatal error: fault") on custom resources when built with Go >= 1.18
BUILD_PACKAGES = ("golang-go", "rsync", "make", "golang-github-modern-go-reflect2-dev")
BUILD_SUITE = "bookworm"  # Kubernetes 1.20 builds with bookworm's Go 1.19; newer Go refuses it
BUILD_DISK_BYTES = 3 * 1024**3
RUN_DISK_BYTES = 200 * 1024**2
_GB = 1024**3


def _is_root() -> bool:
    return os.geteuid() == 0


def _has_passwordless_sudo() -> bool:
    if shutil.which("sudo") is None:
        return False
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _dpkg_installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    query = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return query.returncode == 0 and query.stdout.strip() == "install ok installed"


def _disk_free(path: Path) -> int:
    # the directory may not exist yet: measure the filesystem it will be created on
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _run_logged(command: Sequence[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        output.write(f"$ {' '.join(command)}\n".encode())
        output.flush()
        return subprocess.run(
            list(command), stdin=subprocess.DEVNULL, stdout=output, stderr=output, check=False
        ).returncode


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


@dataclass(frozen=True)
class Host:
    """The probes of this machine that the checks use; replace any of them in tests."""

    os_release: Path = Path("/etc/os-release")
    proc_dir: Path = Path("/proc")
    is_root: Callable[[], bool] = _is_root
    has_passwordless_sudo: Callable[[], bool] = _has_passwordless_sudo
    package_installed: Callable[[str], bool] = _dpkg_installed
    disk_free: Callable[[Path], int] = _disk_free
    run_command: Callable[[Sequence[str], Path], int] = _run_logged
    module_available: Callable[[str], bool] = field(default=_module_available)


def read_os_release(path: Path) -> dict[str, str]:
    """The KEY=value pairs of an os-release file (quotes removed)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key] = value.strip().strip("\"'")
    return values


def check_debian(host: Host, *, for_build: bool) -> dict[str, str]:
    """Debian (and, to build Kubernetes 1.20, Debian 12 bookworm); returns os-release."""
    if not host.proc_dir.joinpath("self").exists():
        raise PrerequisiteError(
            "kubeferry sandbox needs Linux (no /proc here)",
            hint="run it on a Debian 12 (bookworm) machine, VM or container",
        )
    try:
        release = read_os_release(host.os_release)
    except OSError:
        raise PrerequisiteError(
            f"cannot tell which operating system this is: {host.os_release} is missing",
            hint="kubeferry sandbox runs on Debian 12 (bookworm)",
        ) from None
    name = release.get("PRETTY_NAME") or release.get("NAME") or "an unknown system"
    if release.get("ID") != "debian":
        raise PrerequisiteError(
            f"kubeferry sandbox needs Debian, but this machine runs {name}",
            hint="run it on a Debian 12 (bookworm) machine, VM or container",
        )
    if for_build and release.get("VERSION_CODENAME") != BUILD_SUITE:
        raise PrerequisiteError(
            f"building Kubernetes 1.20 needs Debian 12 ({BUILD_SUITE}) and its Go 1.19, "
            f"but this machine runs {name}",
            hint="build once on Debian 12, or copy ~/.cache/kubeferry/bin from a machine that has",
        )
    return release


def check_disk(host: Host, path: Path, needed_bytes: int, purpose: str) -> None:
    free = host.disk_free(path)
    if free < needed_bytes:
        raise PrerequisiteError(
            f"not enough free disk space {purpose}: {free / _GB:.1f} GB free under {path}, "
            f"about {needed_bytes / _GB:.1f} GB needed",
            hint="free some space, or point XDG_CACHE_HOME / KUBEFERRY_SANDBOX_DIR at a larger disk",
        )


def check_python_modules(host: Host) -> None:
    if not host.module_available("moto.server"):
        raise PrerequisiteError(
            "the sandbox's S3 endpoint needs moto[server], which is not installed",
            hint="pip install 'kubeferry[sandbox]'",
        )


def ensure_packages(
    host: Host, packages: Sequence[str], *, log: Path, reporter: Reporter
) -> list[str]:
    """Install the missing Debian packages (as root, or with passwordless sudo); returns them."""
    missing = [package for package in packages if not host.package_installed(package)]
    if not missing:
        return []
    listed = " ".join(missing)
    if host.is_root():
        prefix: list[str] = []
    elif host.has_passwordless_sudo():
        prefix = ["sudo", "-n"]
    else:
        raise PrerequisiteError(
            f"missing Debian packages: {listed}; installing them needs root "
            "(not root, and sudo asks for a password)",
            hint=f"run: sudo apt-get install -y {listed}",
        )
    reporter.step(f"Installing Debian packages: {listed}")
    noninteractive = ["env", "DEBIAN_FRONTEND=noninteractive"]
    for command in (
        [*prefix, *noninteractive, "apt-get", "update"],
        [*prefix, *noninteractive, "apt-get", "install", "-y", *missing],
    ):
        code = host.run_command(command, log)
        if code != 0:
            raise KubeferryError(
                f"`{' '.join(command[len(prefix) + len(noninteractive) :])}` failed (exit {code})",
                hint=f"see {log}",
            )
    still_missing = [package for package in missing if not host.package_installed(package)]
    if still_missing:
        raise KubeferryError(
            f"Debian packages still missing after apt-get install: {' '.join(still_missing)}",
            hint=f"see {log}",
        )
    return missing


def check_prerequisites(
    host: Host,
    *,
    build: bool,
    cache_dir: Path,
    sandbox_dir: Path,
    apt_log: Path,
    reporter: Reporter,
) -> None:
    """Everything `sandbox up` needs; installs missing packages; PrerequisiteError otherwise."""
    check_debian(host, for_build=build)
    check_python_modules(host)
    if build:
        check_disk(host, cache_dir, BUILD_DISK_BYTES, "to build Kubernetes")
    check_disk(host, sandbox_dir, RUN_DISK_BYTES, "to run the sandbox")
    packages = [*RUNTIME_PACKAGES, *(BUILD_PACKAGES if build else ())]
    ensure_packages(host, packages, log=apt_log, reporter=reporter)
