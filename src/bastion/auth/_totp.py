"""TOTP (RFC 6238): six digits, 30-second steps, one step of drift either way, each step once.

The secret is made here, shown once at enrolment (as text, as an
``otpauth://`` URI and as a QR code drawn on the server) and then stored only
sealed (:mod:`bastion.auth._secretbox`). A code is checked against the
steps just before, at and just after now; the step it matched is then
*claimed* for the account by one conditional UPDATE (``... WHERE last_step IS
NULL OR last_step < :step``), RFC 6238 section 5.2. Whichever request (on
whichever instance) claims a step first wins it; every later use of that
code, or of any older one, is refused.

pyotp computes the codes and segno draws the QR code; both are imported
here only when used, so an app without TOTP never loads them.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth._secretbox import SecretBox
from bastion.db._models import TotpSecret
from bastion.db._types import utcnow

DIGITS = 6
PERIOD = 30
#: Steps accepted either side of now: a phone clock 30 s off, or a code typed at the boundary.
DRIFT = 1
#: HKDF's purpose label: the TOTP secrets' key is theirs alone.
PURPOSE = "totp-secret"
#: Longer than any code anyone types; more is bad input, not a wrong code.
MAX_CODE = 64

logger = logging.getLogger("bastion.auth")


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What enrolment shows, once: the secret, its URI and the QR code of the URI (SVG)."""

    secret: str
    otpauth_uri: str
    qr_svg: str


def current_step(now: float | None = None) -> int:
    """The RFC 6238 time step of ``now`` (seconds since the epoch; default: the clock)."""
    return int(time.time() if now is None else now) // PERIOD


def clean_code(code: str) -> str:
    """A code as typed, without the spaces an app shows in it (``123 456``)."""
    return "".join(code.split())


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The latest step within the drift window whose code is ``code``; None if none is.

    Every step of the window is computed and compared in constant time, so
    how long this takes says nothing about which step (if any) matched.
    """
    import pyotp  # noqa: PLC0415 - only when a code is checked

    code = clean_code(code)
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    step = current_step(now)
    found: int | None = None
    for candidate in range(step - DRIFT, step + DRIFT + 1):
        if hmac.compare_digest(totp.generate_otp(candidate).encode(), code.encode()):
            found = candidate
    return found


def new_enrolment(email: str, issuer: str) -> Enrolment:
    """A fresh secret (160 bits, base32) and how an authenticator app takes it."""
    import pyotp  # noqa: PLC0415
    import segno  # noqa: PLC0415 - the QR code is drawn only at enrolment

    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=email, issuer_name=issuer
    )
    # segno's SVG is path data and fixed attributes only (no script, no text from the URI),
    # so the page may include it inline under the CSP.
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    return Enrolment(secret, uri, svg)


class TotpSecrets:
    """The ``bastion_totp`` rows: enrol, confirm, claim a step, remove."""

    def __init__(self, secret_key: bytes) -> None:
        self.box = SecretBox(secret_key, PURPOSE)

    async def find(self, db: AsyncSession, user_id: int) -> TotpSecret | None:
        return await db.get(TotpSecret, user_id, populate_existing=True)

    async def enrol(self, db: AsyncSession, user_id: int, secret: str) -> None:
        """Store ``secret`` sealed, unconfirmed, replacing an unconfirmed one (not committed).

        The caller has checked that no confirmed secret exists.
        """
        await db.execute(delete(TotpSecret).where(TotpSecret.user_id == user_id))
        db.add(
            TotpSecret(
                user_id=user_id,
                secret_ciphertext=self.box.seal(secret.encode(), str(user_id)),
                created_at=utcnow(),
            )
        )

    def secret_of(self, row: TotpSecret) -> str | None:
        """The plaintext secret of ``row``; None if it no longer opens (SECRET_KEY rotated)."""
        opened = self.box.open(row.secret_ciphertext, str(row.user_id))
        return opened.decode() if opened is not None else None

    def check(self, row: TotpSecret, code: str) -> int | None:
        """The step ``code`` is right for under ``row``'s secret, or None (claim it next)."""
        secret = self.secret_of(row)
        if secret is None:
            # The user id only: the operator's cue (README: rotating SECRET_KEY), no secret.
            logger.warning(
                "the TOTP secret of user %d does not open (was SECRET_KEY rotated?): "
                "every code is refused until TOTP is turned off for this account",
                row.user_id,
            )
            return None
        if len(code) > MAX_CODE:
            return None
        return matching_step(secret, code)

    async def claim(
        self, db: AsyncSession, user_id: int, step: int, *, confirming: bool = False
    ) -> bool:
        """Record ``step`` as used, only if no later or equal step was; not committed.

        ``confirming``: the first right code, which turns TOTP on, and only an
        unconfirmed secret can be confirmed. Otherwise only a confirmed one
        signs in.
        """
        state = TotpSecret.confirmed_at
        done = state.is_(None) if confirming else state.is_not(None)
        values: dict[str, object] = {"last_step": step}
        if confirming:
            values["confirmed_at"] = utcnow()
        result = await db.execute(
            update(TotpSecret)
            .where(
                TotpSecret.user_id == user_id,
                done,
                or_(TotpSecret.last_step.is_(None), TotpSecret.last_step < step),
            )
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def remove(self, db: AsyncSession, user_id: int) -> bool | None:
        """Delete the user's secret (not committed): whether it was on (confirmed), None if
        there was none at all."""
        found = (
            await db.execute(
                select(TotpSecret.user_id, TotpSecret.confirmed_at).where(
                    TotpSecret.user_id == user_id
                )
            )
        ).first()
        if found is None:
            return None
        await db.execute(delete(TotpSecret).where(TotpSecret.user_id == user_id))
        return found.confirmed_at is not None
