"""Passkeys (WebAuthn): the two ceremonies, each refusal named, on py_webauthn.

The relying party is ``APP_URL``: its host is the rp id, its origin the one
origin a browser's answer may come from (WebAuthn refuses an IP address as an
rp id, so ``APP_URL`` must name a host).

A challenge is 32 random bytes handed out with the options and stored only as
an HMAC under ``SECRET_KEY`` (:class:`~bastion.db.WebAuthnChallenge`), with
what it is for (``register``, ``sign_in``), whose it is (None: anyone's
discoverable credential) and five minutes to live. The browser's answer
carries it back in clientDataJSON; one conditional UPDATE spends it, so a
replay finds it spent on every instance.

py_webauthn checks everything, but says why only in a message. So the
checks whose reason a client and the audit log must read are made here,
first, each with its name (:class:`Reason`): the origin and type in
clientDataJSON, the rp id hash in the authenticator data, the challenge, and
the signature counter (a conditional UPDATE too: two instances cannot both
accept one count). The library then verifies what is left (attestation,
signature), with the counter check left to us.

py_webauthn, and cbor2 under it, are imported when a ceremony runs: an app
that never sees a passkey does not load them.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db._models import Passkey, User, WebAuthnChallenge, new_public_id
from bastion.db._types import utcnow

if TYPE_CHECKING:
    from datetime import datetime

CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_BYTES = 32
#: What a challenge is for (``bastion_webauthn_challenge.purpose``).
REGISTER = "register"
SIGN_IN = "sign_in"
#: The longest name a passkey may be given (the column's width).
MAX_NAME = 64
#: The body of a credential: attestation statements with certificate chains run to a few KB.
MAX_CREDENTIAL_BODY = 64 * 1024
#: A credential id is at most 1,023 bytes (WebAuthn §5.8.3): 1,364 base64url characters.
MAX_CREDENTIAL_ID = 1_364
#: The transports a passkey may be stored with (WebAuthn's AuthenticatorTransport).
_TRANSPORTS = frozenset({"usb", "nfc", "ble", "smart-card", "hybrid", "internal", "cable"})
#: How long the browser may take, a hint to it (milliseconds); the challenge outlives it.
TIMEOUT_MS = 120_000


class Reason(enum.StrEnum):
    """Why a passkey answer was refused: the 400's ``reason`` and the audit row's."""

    #: clientDataJSON names another origin than APP_URL's (a phishing site relaying it).
    ORIGIN = "origin"
    #: The authenticator signed for another relying party than APP_URL's host.
    RP_ID = "rp_id"
    #: Not a challenge we handed out for this, or already spent, or expired.
    CHALLENGE = "challenge"
    #: The signature counter did not move forward: a cloned authenticator.
    SIGN_COUNT = "sign_count"
    #: No passkey with this id (for this account), or its account cannot sign in.
    CREDENTIAL = "credential"
    #: The signature does not verify under the passkey's public key.
    SIGNATURE = "signature"
    #: The authenticator did not report the user present.
    USER_PRESENCE = "user_presence"
    #: The attestation does not verify, or uses an algorithm we do not take.
    ATTESTATION = "attestation"
    #: This authenticator's credential is already registered.
    DUPLICATE = "duplicate"
    #: Not a credential in the standard JSON form, or its parts do not parse.
    MALFORMED = "malformed"


_SENTENCES = {
    Reason.ORIGIN: "the passkey answer comes from another origin than this site",
    Reason.RP_ID: "the passkey was used for another site (relying party id)",
    Reason.CHALLENGE: "the challenge is unknown, already used or expired: ask for new options",
    Reason.SIGN_COUNT: "the passkey's signature counter went backwards (a cloned authenticator?)",
    Reason.CREDENTIAL: "this passkey is not registered here",
    Reason.SIGNATURE: "the passkey's signature does not verify",
    Reason.USER_PRESENCE: "the authenticator did not confirm the user was present",
    Reason.ATTESTATION: "the authenticator's attestation does not verify",
    Reason.DUPLICATE: "this passkey is already registered",
    Reason.MALFORMED: "not a WebAuthn credential in its standard JSON form",
}


class PasskeyRefused(Exception):
    """A passkey answer refused for ``reason`` (a 400 ``{"error", "reason"}``)."""

    def __init__(self, reason: Reason, passkey: Passkey | None = None) -> None:
        super().__init__(_SENTENCES[reason])
        self.reason = reason
        #: The passkey the answer named, when it named one of ours (for the audit row).
        self.passkey = passkey


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the passkeys are for: ``APP_URL``'s host (rp id) and origin."""

    id: str
    origin: str
    name: str

    @classmethod
    def from_app_url(cls, app_url: str) -> RelyingParty:
        parts = urlsplit(app_url)
        host = parts.hostname or "localhost"
        return cls(id=host, origin=f"{parts.scheme}://{parts.netloc}", name=host)

    @property
    def id_hash(self) -> bytes:
        return hashlib.sha256(self.id.encode()).digest()


@dataclass(frozen=True, slots=True)
class Answer:
    """A browser's answer, parsed just enough to name a refusal before the library runs."""

    credential: dict[str, Any]
    credential_id: str
    client_type: str
    origin: str
    challenge: bytes
    rp_id_hash: bytes
    user_present: bool
    sign_count: int
    user_handle: bytes | None


def b64url(data: bytes) -> str:
    """base64url without padding, as WebAuthn's JSON writes binary."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(value: object) -> bytes:
    from webauthn.helpers import base64url_to_bytes  # noqa: PLC0415 - loaded with a ceremony

    if not isinstance(value, str) or len(value) > MAX_CREDENTIAL_BODY:
        raise PasskeyRefused(Reason.MALFORMED)
    try:
        return base64url_to_bytes(value)
    except (ValueError, TypeError):
        raise PasskeyRefused(Reason.MALFORMED) from None


def parse_answer(credential: object, *, registration: bool) -> Answer:
    """The parts of ``credential`` (``PublicKeyCredential.toJSON()``) the named checks read.

    Raises PasskeyRefused(MALFORMED) for anything that is not that shape.
    """
    from webauthn.helpers import (  # noqa: PLC0415 - loaded with a ceremony
        parse_attestation_object,
        parse_authenticator_data,
    )

    if not isinstance(credential, dict):
        raise PasskeyRefused(Reason.MALFORMED)
    response = credential.get("response")
    credential_id = credential.get("id")
    if (
        not isinstance(response, dict)
        or not isinstance(credential_id, str)
        or not credential_id
        or credential.get("rawId") != credential_id
        or credential.get("type") != "public-key"
    ):
        raise PasskeyRefused(Reason.MALFORMED)
    if len(credential_id) > MAX_CREDENTIAL_ID:
        raise PasskeyRefused(Reason.MALFORMED)
    _b64decode(credential_id)
    try:
        client_data = json.loads(_b64decode(response.get("clientDataJSON")))
        client_type, origin = client_data["type"], client_data["origin"]
        challenge = _b64decode(client_data["challenge"])
        if not isinstance(client_type, str) or not isinstance(origin, str):
            raise PasskeyRefused(Reason.MALFORMED)
        if registration:
            raw = _b64decode(response.get("attestationObject"))
            authenticator_data = parse_attestation_object(raw).auth_data
        else:
            _b64decode(response.get("signature"))
            authenticator_data = parse_authenticator_data(
                _b64decode(response.get("authenticatorData"))
            )
    except PasskeyRefused:
        raise
    except Exception:  # the parsers of untrusted bytes raise anything; all mean 400
        raise PasskeyRefused(Reason.MALFORMED) from None
    handle = response.get("userHandle")
    return Answer(
        credential=credential,
        credential_id=credential_id,
        client_type=client_type,
        origin=origin,
        challenge=challenge,
        rp_id_hash=authenticator_data.rp_id_hash,
        user_present=authenticator_data.flags.up,
        sign_count=authenticator_data.sign_count,
        user_handle=_b64decode(handle) if isinstance(handle, str) and handle else None,
    )


class Passkeys:
    """The ceremonies for one relying party, on the caller's database session."""

    def __init__(self, secret: bytes, rp: RelyingParty) -> None:
        self.secret = secret
        self.rp = rp

    @staticmethod
    def user_handle(user_id: int) -> bytes:
        """The WebAuthn user handle of an account: stable, and no personal data (never the email).

        Derived from the account's id without ``SECRET_KEY``, so that rotating
        the key (which signs everyone out) does not also orphan every passkey:
        an assertion's handle is checked against its credential's account.
        """
        return hashlib.sha256(f"bastion-webauthn-user:{user_id}".encode()).digest()

    def _challenge_hash(self, challenge: bytes) -> str:
        return hmac.new(self.secret, b"webauthn-challenge:" + challenge, "sha256").hexdigest()

    async def _new_challenge(self, db: AsyncSession, purpose: str, user_id: int | None) -> bytes:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        now = utcnow()
        db.add(
            WebAuthnChallenge(
                challenge_hash=self._challenge_hash(challenge),
                purpose=purpose,
                user_id=user_id,
                created_at=now,
                expires_at=now + CHALLENGE_TTL,
            )
        )
        await db.commit()
        return challenge

    async def spend_challenge(
        self, db: AsyncSession, challenge: bytes, purpose: str, user_id: int
    ) -> None:
        """Spend ``challenge`` for ``user_id``'s ``purpose``, once; PasskeyRefused(CHALLENGE) else.

        One conditional UPDATE: unknown, spent, expired, for something else or
        for another account all match no row, and of two instances spending
        the same challenge at once only one matches it.
        """
        now = utcnow()
        result = await db.execute(
            update(WebAuthnChallenge)
            .where(
                WebAuthnChallenge.challenge_hash == self._challenge_hash(challenge),
                WebAuthnChallenge.purpose == purpose,
                WebAuthnChallenge.used_at.is_(None),
                WebAuthnChallenge.expires_at > now,
                (WebAuthnChallenge.user_id.is_(None)) | (WebAuthnChallenge.user_id == user_id),
            )
            .values(used_at=now)
        )
        await db.commit()
        if not getattr(result, "rowcount", 0):
            raise PasskeyRefused(Reason.CHALLENGE)

    def check_client_data(self, answer: Answer, expected_type: str) -> None:
        """Origin, then type: what clientDataJSON says about where and what for."""
        if answer.origin != self.rp.origin:
            raise PasskeyRefused(Reason.ORIGIN)
        if answer.client_type != expected_type:
            raise PasskeyRefused(Reason.MALFORMED)

    def check_rp_id(self, rp_id_hash: bytes) -> None:
        if not hmac.compare_digest(rp_id_hash, self.rp.id_hash):
            raise PasskeyRefused(Reason.RP_ID)

    # -- registration -----------------------------------------------------------------------

    async def registration_options(self, db: AsyncSession, user: User) -> dict[str, Any]:
        """Creation options for ``user``: a discoverable credential, their passkeys excluded."""
        from webauthn import generate_registration_options, options_to_json  # noqa: PLC0415
        from webauthn.helpers import base64url_to_bytes  # noqa: PLC0415
        from webauthn.helpers.structs import (  # noqa: PLC0415
            AuthenticatorSelectionCriteria,
            AuthenticatorTransport,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        existing = await self.of_user(db, user.id)
        kind = {transport.value for transport in AuthenticatorTransport}
        options = generate_registration_options(
            rp_id=self.rp.id,
            rp_name=self.rp.name,
            user_name=user.email,
            user_id=self.user_handle(user.id),
            challenge=await self._new_challenge(db, REGISTER, user.id),
            timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(
                    id=base64url_to_bytes(passkey.credential_id),
                    transports=[AuthenticatorTransport(t) for t in passkey.transports if t in kind],
                )
                for passkey in existing
            ],
        )
        loaded: dict[str, Any] = json.loads(options_to_json(options))
        return loaded

    async def register(
        self, db: AsyncSession, user: User, credential: object, name: str
    ) -> Passkey:
        """Verify a new credential against ``user``'s registration challenge, and keep it."""
        from webauthn import verify_registration_response  # noqa: PLC0415

        answer = parse_answer(credential, registration=True)
        self.check_client_data(answer, "webauthn.create")
        self.check_rp_id(answer.rp_id_hash)
        if not answer.user_present:
            raise PasskeyRefused(Reason.USER_PRESENCE)
        await self.spend_challenge(db, answer.challenge, REGISTER, user.id)
        try:
            verified = verify_registration_response(
                credential=answer.credential,
                expected_challenge=answer.challenge,
                expected_rp_id=self.rp.id,
                expected_origin=self.rp.origin,
            )
        except Exception:  # the library's refusals are messages; ours is named
            raise PasskeyRefused(Reason.ATTESTATION) from None
        if b64url(verified.credential_id) != answer.credential_id:
            raise PasskeyRefused(Reason.MALFORMED)  # the id claimed is not the one attested
        transports = answer.credential["response"].get("transports")
        passkey = Passkey(
            public_id=new_public_id(),
            user_id=user.id,
            credential_id=answer.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=sorted({t for t in transports if t in _TRANSPORTS})
            if isinstance(transports, list)
            else [],
            name=name,
            created_at=utcnow(),
        )
        db.add(passkey)
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            raise PasskeyRefused(Reason.DUPLICATE) from None
        return passkey

    # -- authentication ---------------------------------------------------------------------

    async def authentication_options(self, db: AsyncSession, user: User | None) -> dict[str, Any]:
        """Request options: anyone's discoverable credential, or (``user``) one of theirs."""
        from webauthn import generate_authentication_options, options_to_json  # noqa: PLC0415
        from webauthn.helpers import base64url_to_bytes  # noqa: PLC0415
        from webauthn.helpers.structs import (  # noqa: PLC0415
            PublicKeyCredentialDescriptor,
            UserVerificationRequirement,
        )

        allowed = [] if user is None else await self.of_user(db, user.id)
        options = generate_authentication_options(
            rp_id=self.rp.id,
            challenge=await self._new_challenge(db, SIGN_IN, user.id if user else None),
            timeout=TIMEOUT_MS,
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(passkey.credential_id))
                for passkey in allowed
            ],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        loaded: dict[str, Any] = json.loads(options_to_json(options))
        return loaded

    async def find(self, db: AsyncSession, credential_id: str) -> tuple[Passkey, User] | None:
        row = (
            await db.execute(
                select(Passkey, User)
                .join(User, User.id == Passkey.user_id)
                .where(Passkey.credential_id == credential_id)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def authenticate(
        self, db: AsyncSession, answer: Answer, found: tuple[Passkey, User] | None
    ) -> Passkey:
        """Verify an assertion ``answer`` for the passkey ``found`` (looked up by its id).

        The named checks in order: origin, rp id, credential, user presence,
        challenge (spent here), signature, then the counter, moved forward
        by a conditional UPDATE along with ``last_used_at``.
        """
        from webauthn import verify_authentication_response  # noqa: PLC0415

        passkey = found[0] if found else None
        try:
            self.check_client_data(answer, "webauthn.get")
            self.check_rp_id(answer.rp_id_hash)
            if found is None or not found[1].is_active:
                raise PasskeyRefused(Reason.CREDENTIAL)
            user = found[1]
            if answer.user_handle is not None and not hmac.compare_digest(
                answer.user_handle, self.user_handle(user.id)
            ):
                raise PasskeyRefused(Reason.CREDENTIAL)
            if not answer.user_present:
                raise PasskeyRefused(Reason.USER_PRESENCE)
            await self.spend_challenge(db, answer.challenge, SIGN_IN, user.id)
            assert passkey is not None
            try:
                # Counter 0: the library skips its own check, made below once the signature holds.
                verify_authentication_response(
                    credential=answer.credential,
                    expected_challenge=answer.challenge,
                    expected_rp_id=self.rp.id,
                    expected_origin=self.rp.origin,
                    credential_public_key=passkey.public_key,
                    credential_current_sign_count=0,
                )
            except Exception:  # what is left to fail is the signature
                raise PasskeyRefused(Reason.SIGNATURE) from None
            await self._advance(db, passkey, answer.sign_count)
        except PasskeyRefused as exc:
            exc.passkey = passkey
            raise
        return passkey

    async def _advance(self, db: AsyncSession, passkey: Passkey, count: int) -> None:
        """Move the counter to ``count``; PasskeyRefused(SIGN_COUNT) unless it moves forward.

        An authenticator that keeps no counter sends 0 every time, and that
        stays acceptable while the stored one is 0 too (WebAuthn §6.1.1).
        """
        moved = Passkey.sign_count == 0 if count == 0 else Passkey.sign_count < count
        result = await db.execute(
            update(Passkey)
            .where(Passkey.id == passkey.id, moved)
            .values(sign_count=count, last_used_at=utcnow())
        )
        await db.commit()
        if not getattr(result, "rowcount", 0):
            raise PasskeyRefused(Reason.SIGN_COUNT)
        await db.refresh(passkey)

    # -- the list ---------------------------------------------------------------------------

    async def of_user(self, db: AsyncSession, user_id: int) -> list[Passkey]:
        rows = await db.scalars(
            select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
        )
        return list(rows)

    async def remove(self, db: AsyncSession, user_id: int, public_id: str) -> bool:
        """Delete ``user_id``'s passkey ``public_id``; False when they have none by that id."""
        result = await db.execute(
            delete(Passkey).where(Passkey.user_id == user_id, Passkey.public_id == public_id)
        )
        await db.commit()
        return bool(getattr(result, "rowcount", 0))


async def delete_spent_challenges(db: AsyncSession, now: datetime) -> int:
    """Delete challenges past their five minutes (spent or not): the session sweep calls it."""
    result = await db.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at <= now))
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)
