"""What is counted: the per-account key.

The limits themselves are written in the ``limits`` notation and parsed by
:func:`bastion._parse.ratelimit.parse_rate_limit`, the parser the settings
validate with.
"""

from __future__ import annotations

import hashlib


def account_key(account: str) -> str:
    """The per-account identifier: a digest of the normalised email.

    Normalising (trim, casefold) makes ``Alice@Example.com`` and
    ``alice@example.com`` one bucket, as they are one mailbox in practice.
    Hashing keeps addresses out of Valkey's keyspace and bounds the key length
    whatever a client submits.
    """
    normalised = account.strip().casefold()
    return hashlib.sha256(normalised.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]
