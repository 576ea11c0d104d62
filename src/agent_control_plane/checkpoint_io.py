"""Where audit checkpoints go, and where verification reads them back: an append-only
JSON-lines file, a directory of one file per checkpoint, or a webhook — all outside the
database, so that nobody who can only write the database can reach them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from agent_control_plane.errors import CheckpointSinkError, ConfigurationError
from agent_control_plane.rules.checkpoints import Checkpoint
from agent_control_plane.webhooks import WebhookError, post_json

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: appends are not locked
    fcntl = None  # type: ignore[assignment]

WEBHOOK_TIMEOUT = 10.0


class CheckpointSink(Protocol):
    def write(self, checkpoint: Checkpoint) -> str:
        """Store ``checkpoint``; return where it went. Raise CheckpointSinkError if not."""
        ...


def _line(checkpoint: Checkpoint) -> bytes:
    return (json.dumps(checkpoint.to_json_data(), separators=(",", ":")) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


@dataclass(frozen=True, slots=True)
class JsonLinesFile:
    """Appends one line per checkpoint; concurrent writers take turns (an exclusive lock)."""

    path: Path

    def write(self, checkpoint: Checkpoint) -> str:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                _write_all(fd, _line(checkpoint))
            finally:
                os.close(fd)
        except OSError as exc:
            raise CheckpointSinkError(
                f"could not append the checkpoint to {self.path}: {exc}"
            ) from exc
        return str(self.path)


@dataclass(frozen=True, slots=True)
class CheckpointDirectory:
    """One new file per checkpoint; an existing file is never opened for writing."""

    path: Path

    def write(self, checkpoint: Checkpoint) -> str:
        stamp = checkpoint.taken_at.strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path / f"checkpoint-{stamp}-{checkpoint.signature.value[:12]}.json"
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                _write_all(fd, _line(checkpoint))
            finally:
                os.close(fd)
        except OSError as exc:
            raise CheckpointSinkError(f"could not write the checkpoint to {target}: {exc}") from exc
        return str(target)


@dataclass(frozen=True, slots=True)
class CheckpointWebhook:
    """POSTs each checkpoint as JSON; the receiver keeps it (as one JSON line, say)."""

    url: str
    timeout: float = WEBHOOK_TIMEOUT

    def write(self, checkpoint: Checkpoint) -> str:
        try:
            post_json(self.url, checkpoint.to_json_data(), self.timeout)
        except WebhookError as exc:
            raise CheckpointSinkError(str(exc)) from exc
        return self.url


def _usable_path(path: str | os.PathLike[str], what: str) -> str:
    """``path`` as text, unchanged (a URL keeps its ``//``), unless the operating system
    could never open it (a NUL, a lone surrogate): then a ConfigurationError rather than
    the ValueError ``open`` raises."""
    text = os.fspath(path)
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise ConfigurationError(f"the {what} path is not valid text: {text!r}") from None
    if "\x00" in text:
        raise ConfigurationError(f"the {what} path contains a NUL: {text!r}")
    return text


def sink_for(target: Any) -> CheckpointSink:
    """The sink ``target`` names: an http(s) URL, an existing directory, or a file to
    append to (its directory must exist). A sink object is used as it is."""
    if hasattr(target, "write") and not isinstance(target, str | Path):
        return target  # type: ignore[no-any-return]
    if not isinstance(target, str | os.PathLike):
        raise ConfigurationError(
            "a checkpoint sink is a path, a directory or an http(s) URL, not a "
            f"{type(target).__name__}"
        )
    text = _usable_path(target, "checkpoint sink")
    if isinstance(text, str) and text.startswith(("http://", "https://")):
        if not urlsplit(text).netloc:
            raise ConfigurationError(f"the checkpoint webhook {text!r} names no host")
        return CheckpointWebhook(text)
    path = Path(text)
    if path.is_dir():
        return CheckpointDirectory(path)
    if not path.parent.is_dir():
        raise ConfigurationError(f"the checkpoint file's directory {path.parent} does not exist")
    return JsonLinesFile(path)


def read_checkpoints(source: Any) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints in a JSON-lines file or a directory of them (or given as objects),
    and a description of each entry that is not a checkpoint."""
    if not isinstance(source, str | os.PathLike):
        items = list(source) if isinstance(source, list | tuple | set | frozenset) else [source]
        if not all(isinstance(item, Checkpoint) for item in items):
            raise ConfigurationError("checkpoints are a path, or Checkpoint objects")
        return items, []
    path = Path(_usable_path(source, "checkpoints"))
    if path.is_dir():
        entries = [
            (f"{file.name}", line) for file in sorted(path.glob("*.json")) for line in _lines(file)
        ]
    elif path.is_file():
        entries = [(f"{path.name} line {n}", line) for n, line in enumerate(_lines(path), 1)]
    else:
        raise ConfigurationError(f"no checkpoints at {path}: no such file or directory")
    checkpoints, unreadable = [], []
    for where, line in entries:
        if not line.strip():
            continue
        try:
            checkpoints.append(Checkpoint.from_json_data(json.loads(line)))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            unreadable.append(f"{where}: {exc}")
    return checkpoints, unreadable


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read checkpoints from {path}: {exc}") from exc


def key_material(value: Any) -> Any:
    """A key given as a path (str or Path) read as PEM bytes; anything else as it is."""
    if isinstance(value, str | os.PathLike):
        try:
            return Path(_usable_path(value, "key file")).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the key file: {exc.strerror}") from exc
    return value


def keys_material(values: Iterable[Any] | None) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, str | os.PathLike | bytes):
        values = [values]
    return [key_material(value) for value in values]
