"""Object keys: '/'-separated relative paths, validated once for every backend.

The same rules apply to S3 (where '..' would be harmless) so that a repository can move
between backends and the filesystem backend can never be steered outside its root.
"""

from __future__ import annotations

from reconciler.repository._errors import InvalidKey

# Temporary files of the filesystem backend start with this; no key segment may, so a
# listing never confuses an in-flight write with an object.
TEMP_PREFIX = ".kubeferry-tmp-"

_FORBIDDEN_CHARS = ("\x00", "\\")
MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes


def _check_segments(text: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if segment == "":
            raise InvalidKey(f"invalid {what} {text!r}: empty path segment")
        if segment in (".", ".."):
            raise InvalidKey(f"invalid {what} {text!r}: {segment!r} segments are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise InvalidKey(f"invalid {what} {text!r}: {TEMP_PREFIX!r} is reserved")


def _check_text(text: str, what: str) -> None:
    if text.startswith("/"):
        raise InvalidKey(f"invalid {what} {text!r}: must be relative")
    for char in _FORBIDDEN_CHARS:
        if char in text:
            raise InvalidKey(f"invalid {what} {text!r}: contains {char!r}")
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_KEY_LENGTH:
        raise InvalidKey(f"invalid {what} {text[:40]!r}...: longer than {MAX_KEY_LENGTH} bytes")


def validate_key(key: str, *, what: str = "key") -> str:
    """Return `key` unchanged if it is a safe relative object key, else raise `InvalidKey`."""
    if not isinstance(key, str) or key == "":
        raise InvalidKey(f"invalid {what} {key!r}: must be a non-empty string")
    _check_text(key, what)
    _check_segments(key, key.split("/"), what)
    return key


def validate_prefix(prefix: str) -> str:
    """Validate a listing prefix: '' or a key prefix, which may end in '/' or mid-segment."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"invalid prefix {prefix!r}: must be a string")
    if prefix == "":
        return prefix
    _check_text(prefix, "prefix")
    segments = prefix.split("/")
    if segments[-1] == "":
        segments.pop()  # a trailing '/' means "everything under this directory"
    # the last segment may be partial ('snapshots/ab' matches 'snapshots/abc/...'), but a
    # partial '.' or '..' cannot name anything outside: only whole segments are checked
    _check_segments(prefix, segments[:-1], "prefix")
    if segments and segments[-1] in ("", ".."):
        raise InvalidKey(f"invalid prefix {prefix!r}: {segments[-1]!r} segments are not allowed")
    return prefix
