"""Build kube-apiserver and kube-controller-manager from Debian's `kubernetes` source package.

Follows /work/shared/recipes/sandbox-clusters.md: a private apt configuration adds the
deb-src index (mirror read from this machine's own apt sources), `apt-get source
--download-only`, untar, then a GOPATH-mode `make` as Debian's own debian/rules does.
Every step is skipped when its result is already in the cache, so an interrupted build
resumes; the finished binaries are installed atomically into ``<cache>/bin/``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import KubeferryError
from reconciler.sandbox._layout import BUILD_REVISION, KUBERNETES_VERSION, CacheLayout
from reconciler.sandbox._prerequisites import BUILD_SUITE
from reconciler.sandbox._progress import Reporter

SOURCE_PACKAGE = "kubernetes"
MAKE_TARGETS = "cmd/kube-apiserver cmd/kube-controller-manager"
BINARY_NAMES = ("kube-apiserver", "kube-controller-manager")
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_STEPS = 5
REFLECT2_SOURCE = Path("/usr/share/gocode/src/github.com/modern-go/reflect2")
_REFLECT2_VENDOR = Path("vendor/github.com/modern-go/reflect2")


@dataclass(frozen=True)
class KubernetesBinaries:
    apiserver: Path
    controller_manager: Path


@dataclass(frozen=True)
class AptSource:
    uri: str
    signed_by: Path | None


def installed_binaries(cache: CacheLayout) -> KubernetesBinaries | None:
    """The cached binaries, or None when they still have to be built."""
    paths = [cache.bin_dir / name for name in BINARY_NAMES]
    if all(path.is_file() and os.access(path, os.X_OK) for path in paths):
        return KubernetesBinaries(apiserver=paths[0], controller_manager=paths[1])
    return None


# -- the Debian mirror ------------------------------------------------------------------


def _deb822_paragraphs(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif raw[0] in " \t" and key:
            fields[key] += "\n" + raw.strip()
        else:
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()


def _one_line_entries(text: str) -> Iterator[dict[str, str]]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        options: dict[str, str] = {}
        rest = rest.strip()
        if rest.startswith("["):
            bracket, _, rest = rest[1:].partition("]")
            for option in bracket.split():
                name, _, value = option.partition("=")
                options[name.lower()] = value
        words = rest.split()
        if len(words) < 3:
            continue
        yield {
            "types": kind,
            "uris": words[0],
            "suites": words[1],
            "components": " ".join(words[2:]),
            "signed-by": options.get("signed-by", ""),
        }


def _apt_entries(apt_dir: Path) -> Iterator[dict[str, str]]:
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        yield from _deb822_paragraphs(path.read_text(encoding="utf-8", errors="replace"))
    one_line_files = [apt_dir / "sources.list"]
    if parts.is_dir():
        one_line_files += sorted(parts.glob("*.list"))
    for path in one_line_files:
        if path.is_file():
            yield from _one_line_entries(path.read_text(encoding="utf-8", errors="replace"))


def debian_mirror(apt_dir: Path = Path("/etc/apt"), codename: str = BUILD_SUITE) -> AptSource:
    """The Debian archive this machine's apt already uses (not security, not third-party)."""
    candidates: list[AptSource] = []
    for entry in _apt_entries(apt_dir):
        if entry.get("enabled", "yes").lower() == "no":
            continue
        if not {"deb", "deb-src"} & set(entry.get("types", "").split()):
            continue
        suites = entry.get("suites", "").split()
        if codename not in suites or "main" not in entry.get("components", "").split():
            continue
        for uri in entry.get("uris", "").split():
            if uri.startswith("cdrom:") or "security" in uri:
                continue
            signed_by = entry.get("signed-by", "")
            # an inline key block cannot be reused by path: fall back to the archive keyring
            keyring = (
                Path(signed_by) if signed_by.startswith("/") and "\n" not in signed_by else None
            )
            candidates.append(AptSource(uri=uri.rstrip("/"), signed_by=keyring))
    if not candidates:
        raise KubeferryError(
            f"no Debian mirror for {codename} main found in {apt_dir}/sources.list(.d)",
            hint=f"add one, e.g. `deb http://deb.debian.org/debian {codename} main`",
        )
    # an official-looking archive path wins over any other repository that reuses the codename
    candidates.sort(key=lambda source: "/debian" not in source.uri)
    return candidates[0]


def write_private_apt_config(cache: CacheLayout, source: AptSource) -> list[str]:
    """A deb-src index of our own; returns the apt-get options that select it."""
    (cache.apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (cache.apt_dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    keyring = source.signed_by or (DEFAULT_KEYRING if DEFAULT_KEYRING.exists() else None)
    lines = [
        "Types: deb-src",
        f"URIs: {source.uri}",
        f"Suites: {BUILD_SUITE}",
        "Components: main",
        *([f"Signed-By: {keyring}"] if keyring else []),
    ]
    (cache.apt_dir / "src.sources").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return private_apt_options(cache)


def private_apt_options(cache: CacheLayout) -> list[str]:
    apt = cache.apt_dir
    return [
        "-o",
        "Dir::Etc::SourceList=/dev/null",
        "-o",
        f"Dir::Etc::SourceParts={apt}",
        "-o",
        f"Dir::State::Lists={apt}/lists",
        # keep apt's package cache private too: the system's must not be rebuilt from our index
        "-o",
        f"Dir::Cache={apt}/cache",
    ]


def make_invocation(cache: CacheLayout) -> tuple[list[str], dict[str, str]]:
    """The recipe's `env GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$D/home make WHAT=...`."""
    source = cache.source_dir
    environment = {
        **os.environ,
        "GOPATH": str(source / ".go"),
        "CGO_ENABLED": "0",
        "HOME": str(cache.build_dir / "home"),
    }
    return ["make", f"WHAT={MAKE_TARGETS}"], environment


# -- the steps --------------------------------------------------------------------------


def _run_step(
    command: list[str],
    *,
    cwd: Path,
    log: Path,
    what: str,
    reporter: Reporter,
    env: dict[str, str] | None = None,
) -> None:
    """Run one build command, its output appended to the build log and shown as detail."""
    with log.open("a", encoding="utf-8") as output:
        output.write(f"\n$ (cd {cwd} && {' '.join(command)})\n")
        output.flush()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        assert process.stdout is not None
        for line in process.stdout:
            output.write(line)
            if line.strip():
                reporter.detail(line.strip())
        code = process.wait()
    if code != 0:
        raise KubeferryError(
            f"{what} failed (`{command[0]}` exited with {code})",
            hint=f"see {log}; rerun `kubeferry sandbox up` to resume the build",
        )


def _find_orig_tarball(cache: CacheLayout) -> Path | None:
    tarballs = sorted(cache.build_dir.glob(f"{SOURCE_PACKAGE}_*.orig.tar.gz"))
    return tarballs[-1] if tarballs else None


def download_source(cache: CacheLayout, reporter: Reporter, *, apt_dir: Path) -> Path:
    """Steps 1-2: the deb-src index and `apt-get source --download-only kubernetes`."""
    existing = _find_orig_tarball(cache)
    if existing is not None:
        return existing
    log = cache.build_log
    reporter.step(f"[1/{_STEPS}] Fetching Debian's source index ({BUILD_SUITE})")
    options = write_private_apt_config(cache, debian_mirror(apt_dir))
    _run_step(
        ["apt-get", *options, "update"],
        cwd=cache.build_dir,
        log=log,
        what="fetching the Debian source index",
        reporter=reporter,
    )
    reporter.step(f"[2/{_STEPS}] Downloading the {SOURCE_PACKAGE} source package (34 MB)")
    _run_step(
        ["apt-get", *options, "source", "--download-only", SOURCE_PACKAGE],
        cwd=cache.build_dir,
        log=log,
        what="downloading the Kubernetes source",
        reporter=reporter,
    )
    tarball = _find_orig_tarball(cache)
    if tarball is None:
        raise KubeferryError(
            f"apt-get source left no {SOURCE_PACKAGE}_*.orig.tar.gz in {cache.build_dir}",
            hint=f"see {log}",
        )
    return tarball


def unpack_source(cache: CacheLayout, tarball: Path, reporter: Reporter) -> None:
    """Step 3: untar into a scratch directory, then rename, so a half-unpacked tree never counts."""
    if cache.source_dir.is_dir():
        return
    reporter.step(f"[3/{_STEPS}] Unpacking {tarball.name}")
    scratch = cache.build_dir / ".unpack"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    _run_step(
        ["tar", "xzf", str(tarball), "-C", str(scratch)],
        cwd=cache.build_dir,
        log=cache.build_log,
        what="unpacking the Kubernetes source",
        reporter=reporter,
    )
    unpacked = scratch / cache.source_dir.name
    if not unpacked.is_dir():
        raise KubeferryError(
            f"{tarball.name} does not contain {cache.source_dir.name}/",
            hint=f"Debian's {SOURCE_PACKAGE} package changed; kubeferry expects Kubernetes "
            f"{KUBERNETES_VERSION}",
        )
    unpacked.rename(cache.source_dir)
    shutil.rmtree(scratch, ignore_errors=True)


def patch_vendored_reflect2(cache: CacheLayout, source: Path = REFLECT2_SOURCE) -> bool:
    """Swap the vendored reflect2 1.0.1 for Debian's >= 1.0.2; True if it changed anything.

    reflect2 1.0.1 reads Go runtime internals that changed in Go 1.18: an apiserver built with
    Debian's Go 1.19 dies ("fatal error: fault" in json-iterator) on the first custom resource.
    1.0.2 is API-compatible, so the rest of the vendor tree stays as released.
    """
    if not (source / "go_above_118.go").is_file():
        raise KubeferryError(
            f"{source} does not hold reflect2 >= 1.0.2",
            hint="apt-get install golang-github-modern-go-reflect2-dev",
        )
    vendored = cache.source_dir / _REFLECT2_VENDOR
    if (vendored / "go_above_118.go").is_file():
        return False
    scratch = vendored.with_name(f".reflect2-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and (item.suffix in (".go", ".s") or item.name == "LICENSE"):
            shutil.copy2(item, scratch / item.name)
    shutil.rmtree(vendored, ignore_errors=True)
    scratch.rename(vendored)
    return True


def _build_stamp(cache: CacheLayout) -> Path:
    return cache.build_output_dir / ".kubeferry-build-revision"


def compile_binaries(cache: CacheLayout, reporter: Reporter) -> None:
    """Step 4: GOPATH-mode make, exactly as the recipe (go build -mod=vendor does not work)."""
    patch_vendored_reflect2(cache)
    stamp = _build_stamp(cache)
    built = all((cache.build_output_dir / name).is_file() for name in BINARY_NAMES)
    if built and stamp.is_file() and stamp.read_text().strip() == BUILD_REVISION:
        return
    reporter.step(
        f"[4/{_STEPS}] Compiling kube-apiserver and kube-controller-manager "
        "(about 7 minutes on 2 cores)"
    )
    gopath_link = cache.source_dir / ".go" / "src" / "k8s.io" / "kubernetes"
    gopath_link.parent.mkdir(parents=True, exist_ok=True)
    if gopath_link.is_symlink() or gopath_link.exists():
        gopath_link.unlink()
    gopath_link.symlink_to("../../..")
    command, environment = make_invocation(cache)
    _run_step(
        command,
        cwd=cache.source_dir,
        env=environment,
        log=cache.build_log,
        what="compiling Kubernetes",
        reporter=reporter,
    )
    stamp.write_text(BUILD_REVISION + "\n", encoding="utf-8")


def install_binaries(cache: CacheLayout, reporter: Reporter) -> KubernetesBinaries:
    """Step 5: copy to a scratch directory, check they run, then rename into place."""
    reporter.step(f"[5/{_STEPS}] Installing the binaries into {cache.bin_dir}")
    cache.bin_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = cache.bin_dir.parent / f".{cache.bin_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    for name in BINARY_NAMES:
        target = scratch / name
        shutil.copy2(cache.build_output_dir / name, target)
        target.chmod(0o755)
        version = subprocess.run(
            [str(target), "--version"], capture_output=True, text=True, check=False
        )
        if f"v{KUBERNETES_VERSION}" not in version.stdout:
            shutil.rmtree(scratch, ignore_errors=True)
            raise KubeferryError(
                f"the freshly built {name} does not report v{KUBERNETES_VERSION}",
                hint=f"delete {cache.source_dir} and rerun `kubeferry sandbox up`",
            )
    try:
        scratch.rename(cache.bin_dir)
    except OSError:  # another process installed them first
        shutil.rmtree(scratch, ignore_errors=True)
    binaries = installed_binaries(cache)
    if binaries is None:
        raise KubeferryError(f"installing the Kubernetes binaries into {cache.bin_dir} failed")
    return binaries


@contextmanager
def _build_lock(cache: CacheLayout) -> Iterator[None]:
    cache.root.mkdir(parents=True, exist_ok=True)
    with cache.lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_kubernetes_binaries(
    cache: CacheLayout, reporter: Reporter, *, apt_dir: Path = Path("/etc/apt")
) -> KubernetesBinaries:
    """The cached binaries, building them first if needed (one build at a time per cache)."""
    ready = installed_binaries(cache)
    if ready is not None:
        return ready
    with _build_lock(cache):
        ready = installed_binaries(cache)  # built by another process while we waited
        if ready is not None:
            return ready
        cache.build_dir.mkdir(parents=True, exist_ok=True)
        cache.build_log.parent.mkdir(parents=True, exist_ok=True)
        tarball = download_source(cache, reporter, apt_dir=apt_dir)
        unpack_source(cache, tarball, reporter)
        compile_binaries(cache, reporter)
        return install_binaries(cache, reporter)
