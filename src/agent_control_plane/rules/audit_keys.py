"""Audit keys: the secrets that key the chain's links and sign what vouches for it.

A key never reaches the database: rows hold only its id, derived from the secret, so a
verifier holding several keys (after a rotation) knows which one each row needs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from agent_control_plane.errors import ConfigurationError
from agent_control_plane.rules.lengths import KEY_ID_LENGTH

MIN_KEY_BYTES = 32
_ID_LABEL = b"agent-control-plane audit key id"
_SEPARATOR = ","


def key_id_of(secret: bytes) -> str:
    """The id stored with what a key signed: a keyed digest, which reveals nothing of it."""
    return hmac.new(secret, _ID_LABEL, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True, slots=True)
class AuditKey:
    """A secret of at least 32 bytes (e.g. ``acp audit keygen``) and its id."""

    id: str
    secret: bytes = field(repr=False)

    @classmethod
    def of(cls, value: AuditKey | str | bytes) -> AuditKey:
        """The key for ``value``: an AuditKey, or its secret as text or bytes."""
        if isinstance(value, AuditKey):
            return value
        if isinstance(value, str):
            value = value.strip().encode()
        if not isinstance(value, bytes):
            raise ConfigurationError(
                f"an audit key is a secret string or bytes, not {type(value).__name__}"
            )
        if len(value) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"an audit key must be at least {MIN_KEY_BYTES} bytes long (got {len(value)}): "
                "make one with `acp audit keygen`"
            )
        return cls(key_id_of(value), value)

    def sign(self, message: str) -> str:
        """HMAC-SHA-256 of ``message``, as 64 hex digits (the one-shot C function: on every
        governed decision, so it must stay a small share of one)."""
        return hmac.digest(self.secret, message.encode(), "sha256").hex()


KeyLike = AuditKey | str | bytes


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key new rows are linked and signed with (if any), and every key a verifier
    knows by id: the current one and those it replaced."""

    current: AuditKey | None = None
    by_id: Mapping[str, AuditKey] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, current: KeyLike | None = None, older: Iterable[KeyLike] | str = ()) -> Keyring:
        """``older`` may be one string of secrets separated by commas."""
        if isinstance(older, str):
            older = [part for part in older.split(_SEPARATOR) if part.strip()]
        keys = [AuditKey.of(key) for key in older]
        key = None if current is None else AuditKey.of(current)
        if key is not None:
            keys.append(key)
        return cls(key, MappingProxyType({k.id: k for k in keys}))

    @property
    def keyed(self) -> bool:
        """Whether any key is known: then every row must be keyed or vouched for."""
        return bool(self.by_id)

    def get(self, key_id: str) -> AuditKey | None:
        return self.by_id.get(key_id)


NO_KEYS = Keyring()
