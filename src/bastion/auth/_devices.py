"""Devices: which browser on which system, on which network, signed in.

Two uses. The session list says "Firefox on Linux" instead of a 200-character
User-Agent, and a sign-in from a device the account has not used in the last
:data:`NEW_DEVICE_WINDOW` sends a security notice
(``auth.sign_in.new_device``).

A "device" is deliberately coarse: the browser *family* and the system
*family* (never their versions, so an update is no new device) and the
client IP's /24 (IPv4) or /64 (IPv6), the block one home or office line
usually gets. The classifier reads the User-Agent as browsers actually write
it; it is no defence (a client may send any string), only a good enough
label, and an unknown string is "Other", never an error. Only a keyed hash of
the three is stored (:func:`fingerprint`), so the table is no log of where
each user has been.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db._models import KnownDevice

#: A device unseen for this long is new again (the issue's "last 30 days").
NEW_DEVICE_WINDOW = timedelta(days=30)
#: last_seen_at of a known device is refreshed at most this often, so a sign-in
#: from a known device is one indexed read and, mostly, no write.
DEVICE_TOUCH_INTERVAL = timedelta(days=1)

OTHER = "Other"

#: Browser families, tested in order: each token below is also written by the
#: browsers tested after it (Edge and Opera say "Chrome", Chrome says "Safari").
_BROWSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("curl", ("curl/",)),
    ("Edge", ("edg/", "edga/", "edgios/", "edge/")),
    ("Opera", ("opr/", "opera", "opt/")),
    ("Firefox", ("firefox/", "fxios/")),
    ("Chrome", ("chrome/", "chromium/", "crios/", "headlesschrome/")),
    ("Safari", ("safari/",)),
)

#: System families, in order: Android says "Linux", iOS says "like Mac OS X",
#: ChromeOS says "X11".
_SYSTEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Android", ("android",)),
    ("iOS", ("iphone", "ipad", "ipod")),
    ("ChromeOS", ("cros ",)),
    ("Windows", ("windows",)),
    ("macOS", ("macintosh", "mac os x")),
    ("Linux", ("linux", "x11")),
)


@dataclass(frozen=True, slots=True)
class Device:
    browser: str
    system: str

    def label(self) -> str:
        """What a person reads in the session list: "Firefox on Linux"."""
        if self.system == OTHER:
            return self.browser if self.browser != OTHER else "Unknown browser"
        return f"{self.browser} on {self.system}"


def _first(text: str, families: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for family, tokens in families:
        if any(token in text for token in tokens):
            return family
    return OTHER


def classify_device(user_agent: str | None) -> Device:
    """The browser and system families a User-Agent names; "Other" for what it does not."""
    text = (user_agent or "")[:512].lower()
    return Device(_first(text, _BROWSERS), _first(text, _SYSTEMS))


def network(ip: str | None) -> str:
    """The client's /24 (IPv4) or /64 (IPv6), as text; "unknown" without a usable address."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def fingerprint(secret: bytes, user_agent: str | None, ip: str | None) -> str:
    """HMAC-SHA256 under SECRET_KEY of browser, system and network: the stored device key.

    Keyed, so that the small space of (browser, system, /24) cannot be
    enumerated from a copy of the table to learn where a user signs in from.
    """
    device = classify_device(user_agent)
    key = f"{device.browser}\x00{device.system}\x00{network(ip)}"
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


async def remember(db: AsyncSession, user_id: int, key: str, now: datetime) -> bool:
    """Record that ``user_id`` used the device ``key`` at ``now``; True if it is new to them.

    New means: not used in the last :data:`NEW_DEVICE_WINDOW`, and the account
    has used some device before. An account's very first device (the one it
    signed up on; for an account made by ``bastion createuser`` or before this
    table existed, the one it first signs in from) is learned without a
    notice: announcing an account's first use to itself tells its owner
    nothing. Commits.
    """
    row = await db.scalar(
        select(KnownDevice).where(KnownDevice.user_id == user_id, KnownDevice.fingerprint == key)
    )
    if row is not None:
        new = now - row.last_seen_at >= NEW_DEVICE_WINDOW
        if new or now - row.last_seen_at >= DEVICE_TOUCH_INTERVAL:
            row.last_seen_at = now
            await db.commit()
        return new
    # Only on a miss (rare): has this account any device at all?
    first = await db.scalar(select(KnownDevice.id).where(KnownDevice.user_id == user_id).limit(1))
    db.add(KnownDevice(user_id=user_id, fingerprint=key, first_seen_at=now, last_seen_at=now))
    try:
        await db.commit()
    except IntegrityError:
        # Two sign-ins from the same new device at once: the other one recorded it.
        await db.rollback()
        return False
    return first is not None


async def forget_stale(db: AsyncSession, now: datetime) -> int:
    """Delete the devices unused for :data:`NEW_DEVICE_WINDOW`; returns how many. Commits.

    Such a device would be "new" at its next sign-in anyway, so its row says
    nothing any more; the periodic ``bastion.sessions.clean`` keeps the
    table to the devices of the last 30 days.
    """
    result = await db.execute(
        delete(KnownDevice).where(KnownDevice.last_seen_at <= now - NEW_DEVICE_WINDOW)
    )
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)
