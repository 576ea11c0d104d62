"""Resources in one canonical form, and how a resource pattern matches one (pure).

Every resource ``govern`` sees is rewritten to its canonical form before it is matched
against a policy's assets, bound to an approval or stored, so ``./secrets/a``,
``x/../secrets/a``, ``secrets//a`` and ``secrets%2Fa`` are all ``secrets/a``:

- an optional ``scheme:`` prefix is kept, in lower case (``FILE:a`` is ``file:a``); a
  ``file://`` URL becomes the plain ``file:`` form, and a URL's host is lower-cased;
- percent-encoding is decoded exactly once, and a ``%`` the decoding leaves before two
  hex digits is written back as ``%25``, so ``%252e`` stays a literal ``%2e`` and never
  becomes ``.`` (decoding the canonical form again changes nothing);
- ``\\`` separates segments like ``/``; empty and ``.`` segments go; ``..`` removes the
  segment before it; a trailing ``/`` goes; text is in Unicode NFC;
- a ``..`` that climbs above the start (or above ``/``) makes the resource invalid, as
  does a control character (``%00``, ``%0a``) or percent-encoding that is not UTF-8.

With a ``root`` (an MCP server's folder), a path under the root is made relative to it
and an absolute path outside it is invalid. Letter case is kept: on a case-sensitive
file system ``Secrets`` is another folder. Deny patterns therefore match regardless of
case (a case-insensitive file system opens ``SECRETS/key`` as ``secrets/key``), allow
patterns and approval scopes only in the exact case.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from urllib.parse import unquote

INVALID = "assets.invalid_resource"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
_DRIVE_RE = re.compile(r"^([A-Za-z]):(/.*)$", re.DOTALL)
_URL_RE = re.compile(r"^//([^/?#]*)([^?#]*)(.*)$", re.DOTALL)
_NOT_IN_HOST_RE = re.compile(r"[/\\?#@%\s]")
_ENCODED_PERCENT_RE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class InvalidResource(ValueError):
    """A resource that has no canonical form; the message says why."""


def _decoded(text: str) -> str:
    try:
        value = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidResource("its percent-encoding is not UTF-8") from None
    if _CONTROL_RE.search(value):
        raise InvalidResource("it holds a control character")
    return unicodedata.normalize("NFC", value)


def _reencoded(text: str) -> str:
    return _ENCODED_PERCENT_RE.sub("%25", text)


def _split_drive(path: str) -> tuple[str, str]:
    """``C:/x`` -> (``C:``, ``/x``); anything else -> ("", path)."""
    match = _DRIVE_RE.match(path)
    if match is None:
        return "", path
    return match.group(1).upper() + ":", match.group(2)


def _segments(path: str) -> tuple[bool, list[str]]:
    """Whether ``path`` (decoded, ``/``-separated) is absolute, and its resolved segments."""
    absolute = path.startswith("/")
    resolved: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not resolved:
                raise InvalidResource("a '..' climbs out of " + ("/" if absolute else "its root"))
            resolved.pop()
        else:
            resolved.append(segment)
    return absolute, resolved


def _path(text: str, root: str | None, *, bare: bool = False) -> str:
    """The canonical form of a decoded path, relative to ``root`` when one is given.

    A ``bare`` path (one with no scheme before it) whose first segment holds a ``:``
    keeps a leading ``./``, as in RFC 3986, so that it is never read as a scheme or a
    drive letter the next time."""
    drive, rest = _split_drive(text.replace("\\", "/"))
    absolute, segments = _segments(rest)
    absolute = absolute or bool(drive)
    if root is not None:
        root_drive, root_rest = _split_drive(root)
        _, root_segments = _segments(root_rest)
        if absolute:
            inside = drive == root_drive and segments[: len(root_segments)] == root_segments
            if not inside:
                raise InvalidResource(f"it is outside the server's root {root}")
            segments = segments[len(root_segments) :]
            absolute, drive = False, ""
    if absolute:
        return drive + "/" + "/".join(segments)
    if bare and segments and ":" in segments[0]:
        return "./" + "/".join(segments)
    return "/".join(segments) or "."


def _url(scheme: str, rest: str, root: str | None) -> str:
    """``scheme://[user@]host/path[?query]``: host lower-cased, user-info dropped, path
    resolved; a ``file://`` URL on this host (no host, or localhost) is a plain path."""
    match = _URL_RE.match(rest)
    assert match is not None  # every string starting with // matches
    authority, path, tail = match.groups()
    host = _decoded(authority.rpartition("@")[2]).lower()
    if _NOT_IN_HOST_RE.search(host):
        raise InvalidResource(f"{host!r} is not a host name")
    if scheme == "file" and host in ("", "localhost"):
        return f"file:{_path(_decoded(path) or '/', root)}"
    resolved = _path(_decoded(path), None) if path else ""
    return f"{scheme}://{host}{resolved}{_decoded(tail)}"


def canonical_root(root: str) -> str:
    """A server root in canonical form; InvalidResource unless it is an absolute path."""
    value = _path(_decoded(root), None)
    if not (value.startswith("/") or _DRIVE_RE.match(value)):
        raise InvalidResource("a root must be an absolute path, like /srv/files")
    return value


def canonical(resource: str, root: str | None = None) -> str:
    """The canonical form of ``resource``; InvalidResource if it has none.

    ``root`` (canonical, see ``canonical_root``) is the folder relative paths start
    from: absolute paths under it become relative, absolute paths outside it are invalid.
    """
    scheme_match = _SCHEME_RE.match(resource)
    if scheme_match is None or len(scheme_match.group(1)) == 1:  # none, or a drive letter
        return _reencoded(_path(_decoded(resource), root, bare=True))
    scheme, rest = scheme_match.group(1).lower(), scheme_match.group(2).replace("\\", "/")
    if rest.startswith("//"):
        return _reencoded(_url(scheme, rest, root))
    return _reencoded(f"{scheme}:{_path(_decoded(rest), root)}")


def relative_to_root(resource: str, root: str) -> str | None:
    """A canonical ``resource`` made relative to ``root`` if it is an absolute path under
    it; None otherwise."""
    try:
        relative = canonical(resource, root)
    except InvalidResource:
        return None  # outside the root
    return relative if relative != resource else None


def matches(resource: str, pattern: str, *, any_case: bool = False) -> bool:
    """Whether a canonical ``resource`` matches a canonical glob ``pattern``.

    A folder matches the patterns for what is under it (``file:secrets`` matches
    ``file:secrets/*``): listing a folder shows what it holds. ``any_case`` compares
    regardless of letter case (for deny patterns).
    """
    if any_case:
        resource, pattern = resource.casefold(), pattern.casefold()
    return fnmatch.fnmatchcase(resource, pattern) or fnmatch.fnmatchcase(resource + "/", pattern)
