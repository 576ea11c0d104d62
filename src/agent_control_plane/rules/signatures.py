"""Signatures over audit statements: HMAC-SHA-256 with an audit key, or Ed25519.

An HMAC signature can be checked only by a holder of the key, who could also forge one;
an Ed25519 signature can be checked by anyone with the public key, and made only with the
private key, which can live with whoever takes checkpoints and nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from agent_control_plane.errors import ConfigurationError
from agent_control_plane.rules.audit_keys import AuditKey, Keyring
from agent_control_plane.rules.lengths import KEY_ID_LENGTH

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

HMAC = "hmac-sha256"
ED25519 = "ed25519"


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - the extra is installed wherever tests run
        raise ConfigurationError(
            "Ed25519 signatures need the cryptography package: "
            "pip install 'agent-control-plane-sql[signing]'"
        ) from None
    return ed25519


@dataclass(frozen=True, slots=True)
class Signature:
    algorithm: str  # "hmac-sha256" or "ed25519"
    key_id: str
    value: str  # hex


def public_key_id(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signs: an audit key (HMAC) or an Ed25519 private key."""

    key: AuditKey | Ed25519PrivateKey

    def sign(self, message: str) -> Signature:
        if isinstance(self.key, AuditKey):
            return Signature(HMAC, self.key.id, self.key.sign(message))
        value = self.key.sign(message.encode()).hex()
        return Signature(ED25519, public_key_id(self.key.public_key()), value)


def signer_for(signing_key: Any, keys: Keyring) -> Signer:
    """``signing_key`` (an Ed25519 private key, its PEM bytes, or an AuditKey), else the
    current audit key; a ConfigurationError when there is neither."""
    if signing_key is None:
        if keys.current is None:
            raise ConfigurationError(
                "a checkpoint must be signed: open ACP with audit_key= (or ACP_AUDIT_KEY), "
                "or pass an Ed25519 private key as signing_key="
            )
        return Signer(keys.current)
    if isinstance(signing_key, bytes):
        return Signer(private_key_from_pem(signing_key))
    if isinstance(signing_key, AuditKey | _ed25519().Ed25519PrivateKey):
        return Signer(signing_key)
    raise ConfigurationError(
        "signing_key must be an Ed25519 private key, its PEM (bytes or a file) or an "
        f"AuditKey, not {type(signing_key).__name__}"
    )


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise ConfigurationError("the private key is not an Ed25519 key")
    return cast("Ed25519PrivateKey", key)


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, _ed25519().Ed25519PublicKey):
        raise ConfigurationError("the public key is not an Ed25519 key")
    return cast("Ed25519PublicKey", key)


def public_keys_by_id(keys: Any) -> Mapping[str, Ed25519PublicKey]:
    """Ed25519 public keys (objects or PEM bytes) by their ids."""
    loaded = [public_key_from_pem(key) if isinstance(key, bytes) else key for key in keys]
    ed25519 = _ed25519() if loaded else None
    for key in loaded:
        if ed25519 is not None and not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigurationError(
                f"checkpoint keys are Ed25519 public keys or their PEM, not {type(key).__name__}"
            )
    return {public_key_id(key): key for key in loaded}


def signature_problem(
    message: str,
    signature: Signature,
    keys: Keyring,
    public_keys: Mapping[str, Ed25519PublicKey],
) -> str | None:
    """Why ``signature`` does not vouch for ``message``; None when it does."""
    if signature.algorithm == HMAC:
        key = keys.get(signature.key_id)
        if key is None:
            return f"signed with audit key {signature.key_id}, which this verification lacks"
        if not hmac.compare_digest(key.sign(message), signature.value):
            return "its signature does not verify"
        return None
    if signature.algorithm == ED25519:
        public_key = public_keys.get(signature.key_id)
        if public_key is None:
            return (
                f"signed with Ed25519 key {signature.key_id}, whose public key this "
                "verification was not given"
            )
        from cryptography.exceptions import InvalidSignature

        try:
            public_key.verify(bytes.fromhex(signature.value), message.encode())
        except (InvalidSignature, ValueError):  # ValueError: a value that is not hex
            return "its signature does not verify"
        return None
    return f"signed with an unknown algorithm {signature.algorithm!r}"
