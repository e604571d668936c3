"""The cold build path: Debian mirror discovery, the private apt config, the make invocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.sandbox._build import (
    AptSource,
    debian_mirror,
    installed_binaries,
    make_invocation,
    private_apt_options,
    write_private_apt_config,
)
from reconciler.sandbox._layout import CacheLayout

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def _apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    apt = tmp_path / "etc-apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / name).write_text(text)
    return apt


def test_mirror_comes_from_the_machines_deb822_sources(tmp_path: Path) -> None:
    third_party = (
        "Types: deb\nURIs: https://repo.example.com/apt\nSuites: bookworm\nComponents: main\n"
    )
    apt = _apt_dir(
        tmp_path,
        {"sources.list.d/a-vendor.sources": third_party, "sources.list.d/debian.sources": DEB822},
    )
    source = debian_mirror(apt)
    assert source == AptSource(
        uri="http://mirror.example.org/debian",
        signed_by=Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
    )


def test_mirror_from_one_line_sources_list(tmp_path: Path) -> None:
    apt = _apt_dir(
        tmp_path,
        {
            "sources.list": "# comment\n"
            "deb http://security.debian.org/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/etc/keys/d.gpg] http://ftp.example.de/debian/ bookworm main contrib\n"
        },
    )
    assert debian_mirror(apt) == AptSource("http://ftp.example.de/debian", Path("/etc/keys/d.gpg"))


def test_disabled_entries_are_ignored_and_no_mirror_is_one_clear_error(tmp_path: Path) -> None:
    disabled = DEB822.replace("Types: deb\n", "Types: deb\nEnabled: no\n", 1)
    apt = _apt_dir(tmp_path, {"sources.list.d/debian.sources": disabled})
    with pytest.raises(KubeferryError) as error:
        debian_mirror(apt)
    assert "no Debian mirror for bookworm main" in str(error.value)
    assert "deb http://deb.debian.org/debian bookworm main" in str(error.value)


def test_private_apt_config_adds_deb_src_without_touching_the_system(tmp_path: Path) -> None:
    cache = CacheLayout(tmp_path / "cache")
    options = write_private_apt_config(cache, AptSource("http://mirror.example.org/debian", None))
    sources = (cache.apt_dir / "src.sources").read_text()
    assert "Types: deb-src\nURIs: http://mirror.example.org/debian\nSuites: bookworm\n" in sources
    assert options == private_apt_options(cache)
    assert options[::2] == ["-o"] * (len(options) // 2)
    pairs = options[1::2]
    assert "Dir::Etc::SourceList=/dev/null" in pairs
    assert f"Dir::Etc::SourceParts={cache.apt_dir}" in pairs
    assert f"Dir::State::Lists={cache.apt_dir}/lists" in pairs
    assert (cache.apt_dir / "lists" / "partial").is_dir()


def test_make_invocation_is_the_recipes_gopath_mode_make(tmp_path: Path) -> None:
    cache = CacheLayout(tmp_path / "cache")
    command, env = make_invocation(cache)
    # env GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$D/home" make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
    assert command == ["make", "WHAT=cmd/kube-apiserver cmd/kube-controller-manager"]
    assert env["GOPATH"] == str(tmp_path / "cache" / "build" / "kubernetes-1.20.2" / ".go")
    assert env["CGO_ENABLED"] == "0"
    assert env["HOME"] == str(tmp_path / "cache" / "build" / "home")


def test_cache_layout_and_presence_check(tmp_path: Path) -> None:
    cache = CacheLayout(tmp_path / "cache")
    assert cache.source_dir == tmp_path / "cache" / "build" / "kubernetes-1.20.2"
    assert cache.bin_dir == tmp_path / "cache" / "bin" / "kubernetes-1.20.2-reflect2-1.0.2"
    assert installed_binaries(cache) is None
    cache.bin_dir.mkdir(parents=True)
    for name in ("kube-apiserver", "kube-controller-manager"):
        (cache.bin_dir / name).write_text("#!/bin/sh\n")
        (cache.bin_dir / name).chmod(0o755)
    binaries = installed_binaries(cache)
    assert binaries is not None
    assert binaries.apiserver == cache.bin_dir / "kube-apiserver"


def _reflect2_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_vendored_reflect2_is_replaced_by_debians_fixed_release(tmp_path: Path) -> None:
    from reconciler.sandbox._build import patch_vendored_reflect2

    cache = CacheLayout(tmp_path / "cache")
    vendored = cache.source_dir / "vendor" / "github.com" / "modern-go" / "reflect2"
    _reflect2_tree(vendored, {"go_below_17.go": "old", "reflect2.go": "old", "BUILD": "bazel"})
    fixed = _reflect2_tree(
        tmp_path / "debian" / "reflect2",
        {"go_above_118.go": "new", "reflect2.go": "new", "reflect2_amd64.s": "asm", "go.mod": "m"},
    )
    assert patch_vendored_reflect2(cache, fixed) is True
    assert sorted(p.name for p in vendored.iterdir()) == [
        "go_above_118.go",
        "reflect2.go",
        "reflect2_amd64.s",
    ]
    assert (vendored / "reflect2.go").read_text() == "new"
    assert patch_vendored_reflect2(cache, fixed) is False  # already patched: nothing to redo


def test_reflect2_patch_names_the_missing_debian_package(tmp_path: Path) -> None:
    from reconciler.sandbox._build import patch_vendored_reflect2

    old_release = _reflect2_tree(tmp_path / "reflect2", {"reflect2.go": "old"})
    with pytest.raises(KubeferryError) as caught:
        patch_vendored_reflect2(CacheLayout(tmp_path / "cache"), old_release)
    assert "golang-github-modern-go-reflect2-dev" in str(caught.value.hint)
