"""Small secrets kept in the database, sealed under a key derived from ``SECRET_KEY``.

A TOTP secret must be readable by the server (it computes the codes from it),
so it cannot be hashed like a password; it is encrypted instead, with
AES-256-GCM, under a key that HKDF-SHA256 derives from ``SECRET_KEY`` and a
purpose label. The label keeps this key apart from every other use of
``SECRET_KEY`` (the session HMACs, the device fingerprints): knowing one
derived value tells nothing about another.

Each sealed value has its own random 96-bit nonce and names, as associated
data, what it belongs to (the user id): a ciphertext copied onto another
account's row fails to open, so a database writer cannot move a second
factor from one account to another. A database dump alone opens nothing.

Rotating ``SECRET_KEY`` makes every sealed value unopenable: :meth:`SecretBox.open`
answers None, and the caller treats that as "no usable secret".
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Marks the format (AES-256-GCM, 12-byte nonce first, base64url): a future one gets "v2.".
VERSION = "v1."
NONCE_BYTES = 12


class SecretBox:
    """Seal and open short values under ``secret`` (``SECRET_KEY``) for one ``purpose``."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._secret = secret
        self._purpose = purpose.encode()

    @cached_property
    def _aead(self) -> AESGCM:
        # cryptography only where a sealed secret is used: apps without TOTP never load it.
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"bastion " + self._purpose
        ).derive(self._secret)
        return AESGCM(key)

    def seal(self, plaintext: bytes, owner: str) -> str:
        """``plaintext`` encrypted and bound to ``owner``, as ASCII for a text column."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, owner.encode())
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, owner: str) -> bytes | None:
        """The plaintext of ``token`` if it was sealed here for ``owner``; None otherwise.

        None covers every reason (another ``SECRET_KEY``, another owner, a
        damaged value): the caller cannot do anything different for any of them.
        """
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415

        if not token.startswith(VERSION):
            return None
        try:
            raw = base64.urlsafe_b64decode(token[len(VERSION) :].encode())
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= NONCE_BYTES:
            return None
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode())
        except InvalidTag:
            return None
