"""A repository in a local (or mounted) directory.

Writes go to a temporary file in the destination directory, are fsynced, then renamed (or
hard-linked, for put_if_absent) into place, so a reader sees the old object, the new one, or
none, never a partial one; the directory is fsynced so the rename survives a crash.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import secrets
import stat as stat_mod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from reconciler.repository._errors import IntegrityError, ObjectNotFound, RepositoryError
from reconciler.repository._keys import TEMP_PREFIX, validate_key, validate_prefix
from reconciler.repository._transport import Availability, ObjectInfo

log = logging.getLogger("kubeferry.repository")

# backups can hold Kubernetes Secrets: objects are private to the owner by default
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_CHECK_KEY_PREFIX = ".kubeferry-check/"
# put() retries when a concurrent delete() prunes the directory it is about to write into
_MAKEDIRS_ATTEMPTS = 10
# hard links are the atomic "create if absent" primitive; these mean "not supported here"
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # some filesystems cannot open directories; durability is best effort there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FilesystemBackend:
    """Objects as files under `root`; keys map to relative paths (never outside `root`)."""

    def __init__(self, root: Path | str) -> None:
        self._root = Path(root).expanduser().absolute()
        self._checked_dirs: set[Path] = set()

    def __repr__(self) -> str:
        return f"FilesystemBackend({str(self._root)!r})"

    @property
    def root(self) -> Path:
        return self._root

    @property
    def location(self) -> str:
        return self._root.as_uri()

    # -- paths ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        validate_key(key)
        return self._root.joinpath(*key.split("/"))

    def _contained(self, directory: Path) -> None:
        # keys cannot contain '..', but a symlinked directory inside the root could still
        # lead elsewhere; refuse to read or write through one
        real_root = os.path.realpath(self._root)
        real = os.path.realpath(directory)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise RepositoryError(f"{self.location}: {directory} leads outside the repository")

    def _error(self, action: str, key: str, error: OSError) -> RepositoryError:
        return RepositoryError(
            f"{self.location}: cannot {action} {key!r}: {error.strerror or error}"
        )

    # -- writes --------------------------------------------------------------------------

    def _ensure_dir(self, directory: Path) -> None:
        missing: builtins.list[Path] = []
        current = directory
        while True:
            try:
                mode = current.stat().st_mode  # one call: no check-then-act race
            except FileNotFoundError:
                missing.append(current)
                if current == current.parent:
                    break
                current = current.parent
                continue
            if not stat_mod.S_ISDIR(mode):
                raise self._not_a_directory(current)
            break
        # never create directories through a symlink that leads out of the root (the
        # root's own ancestors, when the root does not exist yet, are the user's choice)
        if current.is_relative_to(self._root):
            self._contained(current)
        for path in reversed(missing):
            try:
                path.mkdir(mode=_DIR_MODE)
            except FileExistsError:
                # created concurrently (fine), or a non-directory is in the way; if it has
                # been pruned again since, stat raises FileNotFoundError and put() retries
                if not stat_mod.S_ISDIR(path.stat().st_mode):
                    raise self._not_a_directory(path) from None
                continue
            _fsync_dir(path.parent)  # make the new directory entry durable

    def _not_a_directory(self, path: Path) -> RepositoryError:
        if path != self._root and path.is_relative_to(self._root):
            name = path.relative_to(self._root).as_posix()
            return RepositoryError(f"{self.location}: {name!r} is an object, not a directory")
        return RepositoryError(f"{self.location}: {path} is not a directory")

    def _write_temp(self, directory: Path, data: bytes) -> Path:
        """Write `data` to a fresh, fsynced temporary file in `directory`; return its path."""
        for attempt in range(_MAKEDIRS_ATTEMPTS):
            temp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            try:
                self._ensure_dir(directory)
                self._contained(directory)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                fd = os.open(temp, flags, _FILE_MODE)
            except FileNotFoundError:
                # a concurrent delete() pruned a directory on the way: create it again (once
                # the temp file exists, its directory is not empty and cannot be pruned)
                if attempt == _MAKEDIRS_ATTEMPTS - 1:
                    raise
                continue
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                temp.unlink(missing_ok=True)
                raise
            os.close(fd)
            return temp
        raise AssertionError("unreachable")  # pragma: no cover

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            temp = self._write_temp(path.parent, data)
            try:
                os.replace(temp, path)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as error:
            raise self._error("write", key, error) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            temp = self._write_temp(path.parent, data)
            try:
                # link() fails if the name exists, and the name only ever points at a
                # complete file: atomic create-if-absent without partial visibility
                os.link(temp, path)
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno not in _NO_LINK_ERRNOS:
                    raise
                return self._create_exclusive(path, data)
            finally:
                temp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
            return True
        except OSError as error:
            raise self._error("write", key, error) from None

    def _create_exclusive(self, path: Path, data: bytes) -> bool:
        # Fallback for filesystems without hard links: O_EXCL is still atomic for the
        # create, but a crash mid-write can leave a partial object behind.
        log.debug("%s: no hard links, falling back to O_EXCL for %s", self.location, path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        except FileExistsError:
            return False
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            self._contained(path.parent)
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # nothing stored under this key: deleting is idempotent
        except OSError as error:
            raise self._error("delete", key, error) from None
        _fsync_dir(path.parent)
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        # remove now-empty parents so deleted snapshots leave no directory trees behind
        while directory != self._root and self._root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or gone): stop
            directory = directory.parent

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            self._contained(path.parent)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.location, key) from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RepositoryError(f"{self.location}: {key!r} is a symlink") from None
            raise self._error("read", key, error) from None
        try:
            if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                raise ObjectNotFound(self.location, key)
            with os.fdopen(fd, "rb", closefd=False) as stream:
                return stream.read()
        except OSError as error:
            raise self._error("read", key, error) from None
        finally:
            os.close(fd)

    @property
    def cheap_ranges(self) -> bool:
        return True

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise RepositoryError(f"{self.location}: bad range {start}+{length} of {key!r}")
        path = self._path(key)
        try:
            self._contained_cached(path.parent)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.location, key) from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RepositoryError(f"{self.location}: {key!r} is a symlink") from None
            raise self._error("read", key, error) from None
        try:
            data = os.pread(fd, length, start)
            while len(data) < length:  # short reads are legal; end of file is not
                more = os.pread(fd, length - len(data), start + len(data))
                if not more:
                    raise IntegrityError(
                        f"{self.location}: {key!r} ends before {start + length} bytes (truncated?)"
                    )
                data += more
            return data
        except OSError as error:
            raise self._error("read", key, error) from None
        finally:
            os.close(fd)

    def _contained_cached(self, directory: Path) -> None:
        # ranged reads come by the thousand from a few pack directories: check each once
        if directory not in self._checked_dirs:
            self._contained(directory)
            self._checked_dirs.add(directory)

    def _lstat(self, key: str) -> os.stat_result | None:
        path = self._path(key)
        self._contained(path.parent)
        try:
            result = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise self._error("stat", key, error) from None
        return result if stat_mod.S_ISREG(result.st_mode) else None

    def exists(self, key: str) -> bool:
        return self._lstat(key) is not None

    def stat(self, key: str) -> ObjectInfo:
        result = self._lstat(key)
        if result is None:
            raise ObjectNotFound(self.location, key)
        return ObjectInfo(key, result.st_size, datetime.fromtimestamp(result.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # walk only the deepest directory the prefix names in full, filter the rest by name
        directory_part, _, _ = prefix.rpartition("/")
        base = self._root.joinpath(*directory_part.split("/")) if directory_part else self._root
        start = f"{directory_part}/" if directory_part else ""
        try:
            self._contained(base)
        except RepositoryError:
            return
        yield from self._walk(base, start, prefix)

    def _walk(self, directory: Path, key_prefix: str, wanted: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = builtins.list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            raise self._error("list", key_prefix or "/", error) from None
        # Sorting a directory by "name" for files and "name/" for directories yields keys in
        # exactly the global sorted order while streaming (e.g. 'a-b' < 'a/c', as in S3).
        items: builtins.list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if not is_dir and not entry.is_file(follow_symlinks=False):
                    continue  # symlinks, sockets...: not objects
            except OSError:
                continue
            name = key_prefix + entry.name + ("/" if is_dir else "")
            # prune: descend only where the wanted prefix can still match
            if not (name.startswith(wanted) or (is_dir and wanted.startswith(name))):
                continue
            items.append((name, entry, is_dir))
        items.sort(key=lambda item: item[0])
        for name, entry, is_dir in items:
            if is_dir:
                yield from self._walk(Path(entry.path), name, wanted)
                continue
            try:
                result = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as error:
                raise self._error("stat", name, error) from None
            yield ObjectInfo(name, result.st_size, datetime.fromtimestamp(result.st_mtime, UTC))

    # -- health --------------------------------------------------------------------------

    def check(self) -> Availability:
        if self._root.exists() and not self._root.is_dir():
            return Availability.unavailable(f"{self.location}: not a directory")
        probe = _CHECK_KEY_PREFIX + secrets.token_hex(8)
        try:
            self.put(probe, b"kubeferry availability probe\n")
            if self.get(probe) != b"kubeferry availability probe\n":
                return Availability.unavailable(f"{self.location}: probe read back differently")
            self.delete(probe)
        except RepositoryError as error:
            return Availability.unavailable(f"{error} (the repository is not writable)")
        return Availability.ok(f"{self.location}: reachable and writable")
