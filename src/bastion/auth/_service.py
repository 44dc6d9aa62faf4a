"""Sign-up, sign-in and sign-out: the rules, independent of HTTP.

Every outcome of a sign-in is audited with the client IP the trusted-proxy
resolver produced. Failures look identical to the caller (same status, same
body, same hashing time) whatever their reason; only the audit row says why.

An attempt the rate limit refuses costs no database work at all: it is
answered from the limiter's decision and tallied in memory by
:class:`~bastion.audit._blocked.BlockedAttempts`, which writes one
``auth.sign_in.blocked`` row per client, account and few seconds. A flood is
then cheap to answer, and the attempts that reach the password check (one
audit row each) are bounded by the limit.

A password change checks the current password as a sign-in does (same
limit, same audit action); a reset by email is :mod:`bastion.auth._resets`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion._later import Later, current_later
from bastion.audit import (
    PASSKEY_REFUSED,
    PASSKEY_REGISTERED,
    PASSKEY_REMOVED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_COMPLETED,
    SECOND_FACTOR_DISABLED,
    SECOND_FACTOR_ENABLED,
    SECOND_FACTOR_FAILED,
    SECOND_FACTOR_SUCCEEDED,
    SESSION_REVOKED,
    SIGN_IN_NEW_DEVICE,
    SIGN_OUT,
    SIGN_UP,
    AuditEntry,
    Outcome,
    record,
)
from bastion.auth._backup_codes import BACKUP_CODE, BackupCodes
from bastion.auth._devices import classify_device, fingerprint, remember
from bastion.auth._emails import normalise_email
from bastion.auth._events import AccountEvents, NoEvents
from bastion.auth._notices import notify
from bastion.auth._passkeys import (
    MAX_NAME,
    PasskeyRefused,
    Passkeys,
    Reason,
    RelyingParty,
    parse_answer,
)
from bastion.auth._passwords import Passwords
from bastion.auth._pending import PASSKEY, TOTP, PendingSignIns, second_factor_methods
from bastion.auth._policy import PasswordPolicy, check_password
from bastion.auth._resets import RESET_TASK, ResetReason, ResetRefused, consume, find_reset
from bastion.auth._sessions import SessionPolicy, Sessions
from bastion.auth._totp import Enrolment, TotpSecrets, new_enrolment
from bastion.config import Settings
from bastion.db import Database, User
from bastion.db._models import Passkey, PendingSignIn, UserSession
from bastion.db._types import utcnow
from bastion.guard import Client, FailReason, SignInGuard
from bastion.ratelimit import Decision, SignInLimiter


async def _process_later(task: str, /, **arguments: object) -> None:
    """The running app's ``Later``, looked up when used (the app may be built after us)."""
    await current_later()(task, **arguments)


class EndSession(enum.Enum):
    """What ``DELETE /api/auth/sessions/{id}`` did."""

    NOT_SIGNED_IN = "not_signed_in"
    NOT_FOUND = "not_found"
    #: Another session of the user: audited, notified, counted.
    ENDED = "ended"
    #: The caller's own session: that is signing out.
    SIGNED_OUT = "signed_out"


class EmailTaken(ValueError):
    pass


class NotSignedIn(Exception):
    """The request carries no live session: a password change needs one."""


class WrongPassword(Exception):
    """The current password given to a password change is wrong (a failed sign-in)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("the current password is wrong")
        self.decision = decision


class PasswordChangeLimited(Exception):
    """Over the sign-in limit: the current password was not even checked."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("too many password attempts; try again later")
        self.decision = decision


class ResetLimited(Exception):
    """Too many reset requests from this client or for this email.

    The limit is ``PASSWORD_RESET_RATE_LIMIT``.
    """

    def __init__(self, decision: Decision) -> None:
        super().__init__("too many password reset requests; try again later")
        self.decision = decision


class SignUpLimited(Exception):
    """This client created too many accounts lately (``SIGN_UP_RATE_LIMIT``); none was made."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("too many sign-ups from this address; try again later")
        self.decision = decision


class PasskeyLimited(Exception):
    """A passkey sign-in over the sign-in limits: the assertion was not even looked at."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("too many sign-in attempts; try again later")
        self.decision = decision


class PendingGone(Exception):
    """The pending sign-in a passkey proved was completed (or ended) by another request."""


class TotpConflict(Exception):
    """TOTP is not in the state this asks for (a 409); ``reason`` says which state it is in."""

    #: Already on: turn it off before enrolling again.
    ENABLED = "totp_enabled"
    #: Nothing to confirm: enrol first.
    NOT_ENROLLED = "totp_not_enrolled"
    #: Off: there are no backup codes to replace, nothing to turn off.
    DISABLED = "totp_disabled"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WrongCode(Exception):
    """The code that should confirm a TOTP enrolment is not right now (or was used)."""

    reason = "wrong_code"

    def __init__(self) -> None:
        super().__init__("the code is wrong: enter the one your authenticator app shows now")


class SecondFactorOutcome(enum.Enum):
    """How ``POST /api/auth/sign-in/second-factor`` ended."""

    SIGNED_IN = "signed_in"
    #: No live pending sign-in: none, expired, completed, or ended by wrong codes.
    NO_PENDING = "no_pending"
    WRONG = "wrong"
    #: Wrong, and the last wrong code the pending sign-in survives: it is gone.
    ENDED = "ended"
    #: Over the sign-in limits: nothing was checked.
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class SecondFactorResult:
    outcome: SecondFactorOutcome
    user: User | None = None
    token: str | None = None
    decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class TotpState:
    """What /account shows: TOTP on, an enrolment awaiting its code, unused backup codes."""

    enabled: bool
    enrolling: bool
    backup_codes_left: int


@dataclass(frozen=True, slots=True)
class SignInResult:
    user: User | None
    token: str | None
    reason: FailReason | None
    decision: Decision
    #: The second factors the account owes after a right password (``totp``,
    #: ``passkey``): no session yet, only ``pending_token`` for the pending cookie.
    second_factor: tuple[str, ...] = ()
    pending_token: str | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None and self.token is not None


class AuthService:
    """Accounts and sessions on one database, behind the shared sign-in guard."""

    def __init__(
        self,
        database: Database,
        guard: SignInGuard,
        policy: SessionPolicy,
        *,
        passwords: Passwords | None = None,
        sign_up_limiter: SignInLimiter | None = None,
        password_policy: PasswordPolicy | None = None,
        later: Later | None = None,
        app_url: str = "http://localhost:8000",
        reset_limiter: SignInLimiter | None = None,
        events: AccountEvents | None = None,
        site_name: str = "bastion",
    ) -> None:
        """``sign_up_limiter`` counts sign-ups per client IP (none: unlimited).

        ``reset_limiter`` counts password-reset requests per client IP and per
        email (``Bastion.reset_limiter``; none: unlimited, which only a test
        should want). ``events`` hears what the accounts count (sessions
        revoked, reset outcomes, second factors): the app's ``Metrics``.

        ``later`` queues the mail this service sends (a reset link, a security
        notice) outside the request; by default, the running
        :class:`~bastion.Bastion`'s jobs engine. ``app_url`` is where the
        links in that mail point (``APP_URL``). ``site_name`` (``SITE_NAME``) is
        the issuer an authenticator app shows beside a TOTP account.
        """
        self.database = database
        self.later: Later = later or _process_later
        self.app_url = app_url
        self.guard = guard
        self.sign_up_limiter = sign_up_limiter
        self.password_policy = password_policy or PasswordPolicy()
        self.passwords = passwords or Passwords()
        self.sessions = Sessions(policy)
        self.pending = PendingSignIns(policy.secret)
        self.reset_limiter = reset_limiter
        self.events: AccountEvents = events or NoEvents()
        self.site_name = site_name
        self.totp = TotpSecrets(policy.secret)
        self.backup_codes = BackupCodes(policy.secret)

    @property
    def limiter(self) -> SignInLimiter:
        return self.guard.limiter

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        database: Database,
        guard: SignInGuard,
        sign_up_limiter: SignInLimiter | None = None,
        *,
        reset_limiter: SignInLimiter | None = None,
        events: AccountEvents | None = None,
    ) -> AuthService:
        policy = SessionPolicy(
            max_age=timedelta(seconds=settings.SESSION_MAX_AGE),
            idle_timeout=timedelta(seconds=settings.SESSION_IDLE_TIMEOUT),
            secret=settings.SECRET_KEY.encode(),
        )
        return cls(
            database,
            guard,
            policy,
            passwords=Passwords.for_profile(settings.PASSWORD_HASH_PROFILE),
            sign_up_limiter=sign_up_limiter,
            password_policy=PasswordPolicy.from_settings(settings),
            app_url=settings.APP_URL,
            reset_limiter=reset_limiter,
            events=events,
            site_name=settings.SITE_NAME,
        )

    def check_new_password(self, password: str, email: str) -> None:
        """Accept ``email``'s new ``password`` or raise :class:`~bastion.auth.InvalidPassword`.

        Every place a password is chosen (sign-up, ``createuser``, a change, a
        reset) asks here, so one policy holds everywhere; signing in never does.
        """
        check_password(password, email=email, policy=self.password_policy)

    async def find_user(self, db: AsyncSession, email: str) -> User | None:
        return await db.scalar(select(User).where(func.lower(User.email) == email.lower()))

    async def create_user(
        self, email: str, password: str, *, is_admin: bool = False, client: Client | None = None
    ) -> User:
        """Create an account (``bastion createuser``).

        Raises InvalidEmail, InvalidPassword or EmailTaken.
        """
        normalised = self._acceptable(email, password)
        user, _ = await self._create(normalised, password, is_admin=is_admin, client=client)
        return user

    async def sign_up(self, email: str, password: str, client: Client) -> tuple[User, str]:
        """Create an account and its first session in one go: the password is hashed once.

        Raises SignUpLimited, InvalidEmail, InvalidPassword or EmailTaken; on
        any of them no account exists. Sign-ups have their own per-IP limit,
        and spend none of the sign-in budget. The limit counts only sign-ups
        whose email and password are acceptable (checked first, without the
        database): a 400 changes nothing, and someone who tries a few
        passwords the policy refuses is not locked out for the hour. The
        new session is audited as the sign-up's own.
        """
        normalised = self._acceptable(email, password)
        if self.sign_up_limiter is not None:
            decision = await self.sign_up_limiter.hit(client.ip or "unknown", "")
            if not decision.allowed:
                raise SignUpLimited(decision)
        return await self._create(normalised, password, client=client, session=True)

    def _acceptable(self, email: str, password: str) -> str:
        """The normalised email, once it and the password pass; InvalidEmail or InvalidPassword."""
        normalised = normalise_email(email)
        self.check_new_password(password, normalised)
        return normalised

    async def _create(
        self,
        normalised: str,
        password: str,
        *,
        is_admin: bool = False,
        client: Client | None = None,
        session: bool = False,
    ) -> tuple[User, str]:
        """The account for an email and password that :meth:`_acceptable` passed."""
        password_hash = await self.passwords.hash(password)
        async with self.database.session() as db:
            if await self.find_user(db, normalised) is not None:
                raise EmailTaken("an account with this email already exists")
            user = User(email=normalised, password_hash=password_hash, is_admin=is_admin)
            db.add(user)
            try:
                await db.commit()
            except IntegrityError:
                raise EmailTaken("an account with this email already exists") from None
            await record(
                db,
                AuditEntry(
                    SIGN_UP,
                    Outcome.SUCCESS,
                    subject=normalised,
                    actor=normalised,
                    client_ip=client.ip if client else None,
                    user_agent=client.user_agent if client else None,
                    # A sign-up that signs in says so here: no sign-in row follows it.
                    details={"admin": is_admin, "signed_in": session},
                ),
            )
            token = ""
            if session:
                token = await self.sessions.create(
                    db, user, client.ip if client else None, client.user_agent if client else None
                )
                if client is not None:
                    await self._new_device(db, user, client)  # the first one: never "new"
            return user, token

    async def sign_in(self, email: str, password: str, client: Client) -> SignInResult:
        """Check the limit, then the password; audit the outcome either way.

        ``email`` must already be normalised. The attempt counts against the
        limit before the password is checked, so a correct guess made over the
        limit is refused like any other; a refusal touches no database.
        """
        guard = self.guard
        decision = await guard.attempt(client, email)
        if not decision.allowed:
            return SignInResult(None, None, FailReason.RATE_LIMITED, decision)
        async with self.database.session() as db:
            if decision.remaining == 0:
                await guard.tripped(db, client, email, decision)
            user = await self.find_user(db, email)
            verification = await self.passwords.verify(
                user.password_hash if user else None, password
            )
            reason: FailReason | None = None
            if user is None:
                reason = FailReason.UNKNOWN_USER
            elif not verification.ok:
                reason = FailReason.BAD_PASSWORD
            elif not user.is_active:
                reason = FailReason.DEACTIVATED
            if reason is not None or user is None:
                reason = reason or FailReason.UNKNOWN_USER
                await guard.failed(client, email, reason, decision, db=db)
                return SignInResult(None, None, reason, decision)
            if verification.needs_rehash:
                user.password_hash = await self.passwords.hash(password)
                await db.commit()
            methods = await second_factor_methods(db, user.id)
            if methods:
                pending = await self.pending.create(db, user)
                return SignInResult(user, None, None, decision, tuple(methods), pending)
            details = {"rehashed": verification.needs_rehash}
            token = await self.open_session(db, user, client, email, details)
            return SignInResult(user, token, None, decision)

    async def open_session(
        self,
        db: AsyncSession,
        user: User,
        client: Client,
        account: str,
        details: Mapping[str, object],
    ) -> str:
        """The end of every successful sign-in: a session, its audit row, the new-device check.

        A password sign-in without a second factor ends here, and so does
        one completed with a code, a backup code or a passkey (``details``
        says which). Returns the token for the session cookie.
        """
        token = await self.sessions.create(db, user, client.ip, client.user_agent)
        await self.guard.succeeded(client, account, actor=user.email, details=details, db=db)
        if await self._new_device(db, user, client):
            await self._announce(db, SIGN_IN_NEW_DEVICE, user, client, {})
        return token

    async def pending_methods(self, token: str | None) -> list[str] | None:
        """The second factors a live pending sign-in may be completed with; None without one."""
        async with self.database.session() as db:
            found = await self.pending.resolve(db, token)
            return None if found is None else await second_factor_methods(db, found[1].id)

    async def complete_sign_in(
        self, db: AsyncSession, pending: PendingSignIn, user: User, client: Client, method: str
    ) -> str | None:
        """Turn a pending sign-in whose second factor was just proven into a session.

        None when another request completed it first (one pending sign-in,
        at most one session, whichever instance gets there first).
        """
        if not await self.pending.consume(db, pending):
            return None
        return await self.open_session(db, user, client, user.email, {"second_factor": method})

    async def aclose(self) -> None:
        """Write the last tallies of refused attempts (at shutdown, before the database goes)."""
        await self.guard.aclose()

    async def current(self, token: str | None) -> User | None:
        """The signed-in user for a cookie value, or None."""
        if not token:
            return None
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token)
            return found[1] if found else None

    async def sign_out(self, token: str | None, client: Client) -> None:
        if not token:
            return
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token)
            await self.sessions.end(db, token)
            if found is not None:
                await record(
                    db,
                    AuditEntry(
                        SIGN_OUT,
                        Outcome.SUCCESS,
                        subject=found[1].email,
                        actor=found[1].email,
                        client_ip=client.ip,
                        user_agent=client.user_agent,
                    ),
                )

    async def deactivate(self, email: str) -> bool:
        async with self.database.session() as db:
            user = await self.find_user(db, normalise_email(email))
            if user is None:
                return False
            user.deactivated_at = utcnow()
            await db.commit()
            return True

    # -- sessions you can see and end ------------------------------------------------------

    async def signed_in(self, token: str | None) -> tuple[UserSession, User] | None:
        """The live session a cookie names and its user, or None."""
        if not token:
            return None
        async with self.database.session() as db:
            return await self.sessions.resolve(db, token)

    async def list_sessions(
        self, token: str | None
    ) -> tuple[UserSession, list[UserSession]] | None:
        """The caller's session and all of their live ones, newest first; None if signed out."""
        if not token:
            return None
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token)
            if found is None:
                return None
            current, user = found
            return current, await self.sessions.live(db, user.id)

    async def end_session(self, token: str | None, public_id: str, client: Client) -> EndSession:
        """End one session of the signed-in user, named by its public id.

        Ending another one is audited (``auth.session.revoked``, its public id
        in the details), mailed to the account and counted; ending one's own is
        signing out, and is audited as that.
        """
        if not token:
            return EndSession.NOT_SIGNED_IN
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token)
            if found is None:
                return EndSession.NOT_SIGNED_IN
            current, user = found
            if public_id == current.public_id:
                await self.sessions.end(db, token)
                await record(db, self._entry(SIGN_OUT, user, client, {"via": "sessions"}))
                return EndSession.SIGNED_OUT
            if not await self.sessions.end_one(db, user.id, public_id):
                return EndSession.NOT_FOUND
            self.sessions_revoked("ended", 1)
            await self._announce(db, SESSION_REVOKED, user, client, {"session": public_id})
            return EndSession.ENDED

    async def end_other_sessions(self, token: str | None, client: Client) -> int | None:
        """End every session of the signed-in user but the caller's; how many, None if signed out.

        One audit row with the count, and one notice, when any was ended.
        """
        if not token:
            return None
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token)
            if found is None:
                return None
            current, user = found
            ended = await self.sessions.end_all(db, user.id, keep=current)
            if ended:
                self.sessions_revoked("others", ended)
                details = {"count": ended, "kept": current.public_id}
                await self._announce(db, SESSION_REVOKED, user, client, details)
            return ended

    def sessions_revoked(self, reason: str, count: int) -> None:
        """Tell the events that ``count`` sessions ended for ``reason`` (none: nothing)."""
        if count > 0:
            self.events.on_sessions_revoked(reason, count)

    async def _new_device(self, db: AsyncSession, user: User, client: Client) -> bool:
        """Whether this sign-in comes from a device ``user`` has not used lately (and note it)."""
        key = fingerprint(self.sessions.policy.secret, client.user_agent, client.ip)
        return await remember(db, user.id, key, utcnow())

    def _entry(
        self, action: str, user: User, client: Client, details: dict[str, object]
    ) -> AuditEntry:
        return AuditEntry(
            action,
            Outcome.SUCCESS,
            subject=user.email,
            actor=user.email,
            client_ip=client.ip,
            user_agent=client.user_agent,
            details=dict(details),
        )

    async def _announce(
        self,
        db: AsyncSession,
        action: str,
        user: User,
        client: Client,
        details: dict[str, object],
    ) -> None:
        """The audit row for ``action``, then its security notice to the account."""
        await record(db, self._entry(action, user, client, details))
        await notify(self.later, action, user.email, client, app_url=self.app_url)

    # -- passwords: change and reset (issue 20) ----------------------------------------------

    async def change_password(
        self, token: str | None, current_password: str, new_password: str, client: Client
    ) -> str:
        """Change the signed-in user's password; returns the new token for the cookie.

        The new password is checked first (it costs nothing and reveals
        nothing). Then the current one is checked as a sign-in is: counted
        against the sign-in limits first (over them, :class:`PasswordChangeLimited`
        and no check at all), and a wrong one is a failed sign-in for the
        audit trail (``auth.sign_in.failed`` with ``"during":
        "password_change"``) and the metrics: a stolen session cookie must not
        be a way around the sign-in limit.

        A right one sets the new hash and ends every other session of the
        user in one transaction, then gives this session a new token (the old
        cookie value stops working), writes ``auth.password.changed`` and
        queues the notice. Raises NotSignedIn, InvalidPassword,
        PasswordChangeLimited or WrongPassword.
        """
        if not token:
            raise NotSignedIn
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token)
            if found is None:
                raise NotSignedIn
            session, user = found
            self.check_new_password(new_password, user.email)
            await self.prove_password(db, user, current_password, client, "password_change")
            user.password_hash = await self.passwords.hash(new_password)
            ended = await self.sessions.end_all(db, user.id, keep=session)  # commits the hash too
            new_token = await self.sessions.rotate(db, session)
            self.sessions_revoked("password_changed", ended)
            await self._announce(db, PASSWORD_CHANGED, user, client, {"sessions_ended": ended})
        return new_token

    async def prove_password(
        self, db: AsyncSession, user: User, password: str, client: Client, during: str
    ) -> None:
        """Check a signed-in user's fresh proof of their password, as a sign-in checks it.

        Counted against the sign-in limits first (over them,
        :class:`PasswordChangeLimited` and no check at all); a wrong one is a
        failed sign-in for the audit trail (``auth.sign_in.failed`` with
        ``"during": during``) and the metrics, and raises :class:`WrongPassword`:
        a stolen session cookie must not be a way around the sign-in limit.
        """
        guard = self.guard
        decision = await guard.attempt(client, user.email)
        if not decision.allowed:
            raise PasswordChangeLimited(decision)
        if decision.remaining == 0:
            await guard.tripped(db, client, user.email, decision)
        verification = await self.passwords.verify(user.password_hash, password)
        if not verification.ok:
            await guard.failed(
                client,
                user.email,
                FailReason.BAD_PASSWORD,
                decision,
                db=db,
                details={"during": during},
            )
            raise WrongPassword(decision)

    async def request_password_reset(self, email: str, client: Client) -> None:
        """Count the request and queue the reset job: the same work whatever ``email`` is.

        ``email`` must be normalised. No database is read here (see
        :mod:`bastion.auth._resets`): whether the account exists is the job's
        business. Raises ResetLimited past ``PASSWORD_RESET_RATE_LIMIT``.
        """
        if self.reset_limiter is not None:
            decision = await self.reset_limiter.hit(client.ip or "unknown", email)
            if not decision.allowed:
                self._reset_outcome("limited")
                raise ResetLimited(decision)
        await self.later(RESET_TASK, email=email, ip=client.ip, user_agent=client.user_agent)
        self._reset_outcome("requested")

    async def confirm_password_reset(self, token: str, password: str, client: Client) -> None:
        """Set the password of the token's account and end every session of it.

        Raises ResetRefused (``reason``: invalid, used, expired) or
        InvalidPassword; a token refused for its password stays usable. The
        token is marked used in the transaction that sets the password.
        """
        secret = self.sessions.policy.secret
        async with self.database.session() as db:
            try:
                reset, user = await find_reset(db, token, secret)
                self.check_new_password(password, user.email)
                password_hash = await self.passwords.hash(password)
                await consume(db, reset)
            except ResetRefused as exc:
                self._reset_outcome(exc.reason)
                raise
            user.password_hash = password_hash
            ended = await self.sessions.end_all(db, user.id)  # commits the token and the hash
            self.sessions_revoked("password_reset", ended)
            details: dict[str, object] = {"sessions_ended": ended}
            await self._announce(db, PASSWORD_RESET_COMPLETED, user, client, details)
        self._reset_outcome("completed")

    async def reset_token_problem(self, token: str) -> ResetReason | None:
        """Why ``token`` would be refused now (``invalid``, ``used``, ``expired``), or None.

        For the reset page, which says so before anyone types a new password.
        Changes nothing and counts nothing: only a confirmation spends a token.
        """
        async with self.database.session() as db:
            try:
                await find_reset(db, token, self.sessions.policy.secret)
            except ResetRefused as exc:
                return exc.reason
        return None

    def _reset_outcome(self, outcome: str) -> None:
        self.events.on_password_reset(outcome)

    # -- passkeys (issue 24) -------------------------------------------------------------------

    @cached_property
    def passkeys(self) -> Passkeys:
        """The WebAuthn ceremonies, for ``APP_URL``'s host and origin."""
        return Passkeys(self.sessions.policy.secret, RelyingParty.from_app_url(self.app_url))

    async def _session_user(self, db: AsyncSession, token: str | None) -> User:
        """The user of the live session ``token`` names; NotSignedIn otherwise.

        Only the session cookie's token ever comes here: a pending sign-in's
        cookie is another name and another table, and authorises none of this.
        """
        found = await self.sessions.resolve(db, token) if token else None
        if found is None:
            raise NotSignedIn
        return found[1]

    async def passkey_registration_options(
        self, token: str | None, password: str, client: Client
    ) -> dict[str, Any]:
        """Creation options for the signed-in user, after a fresh proof of their password.

        Raises NotSignedIn, PasswordChangeLimited or WrongPassword (see
        :meth:`prove_password`: a failed sign-in ``"during": "passkey_register"``).
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            await self.prove_password(db, user, password, client, "passkey_register")
            return await self.passkeys.registration_options(db, user)

    async def register_passkey(
        self, token: str | None, credential: object, name: str | None, client: Client
    ) -> Passkey:
        """Keep the signed-in user's new passkey, named ``name`` or after the browser.

        Raises NotSignedIn or PasskeyRefused (audited as ``auth.passkey.refused``).
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            email = user.email  # read now: a refusal may roll the session back
            label = name or classify_device(client.user_agent).label()
            try:
                passkey = await self.passkeys.register(db, user, credential, label[:MAX_NAME])
            except PasskeyRefused as exc:
                await self._passkey_refused(db, exc, client, email, "register")
                raise
            self.events.on_second_factor(PASSKEY, "enabled")
            details: dict[str, object] = {"passkey": passkey.public_id, "name": passkey.name}
            await self._announce(db, PASSKEY_REGISTERED, user, client, details)
            return passkey

    async def passkey_sign_in_options(self, pending_token: str | None) -> dict[str, Any]:
        """Request options: for any discoverable passkey, or the pending sign-in's user's."""
        async with self.database.session() as db:
            pending = await self.pending.resolve(db, pending_token) if pending_token else None
            return await self.passkeys.authentication_options(db, pending[1] if pending else None)

    async def passkey_sign_in(
        self, credential: object, pending_token: str | None, client: Client
    ) -> tuple[User, str]:
        """A session for a verified assertion: without a password, or the pending sign-in's.

        What a refusal costs is kept small: a malformed answer is refused
        before the limiter and the database; then the attempt counts against
        the sign-in limits, and over them nothing else is done (a 429, no
        database). The per-IP limit is the password sign-in's own; the
        per-account one is the pending sign-in's account, or without one the
        credential's (its account is unknown until the database is asked).
        Each refusal past the limiter but a malformed answer is audited
        (``auth.passkey.refused``) and counts as a wrong code against a
        pending sign-in.

        Raises PasskeyRefused, PasskeyLimited, or PendingGone (another request
        completed the pending sign-in first).
        """
        answer = parse_answer(credential, registration=False)
        async with self.database.session() as db:
            pending = await self.pending.resolve(db, pending_token) if pending_token else None
            account = pending[1].email if pending else f"passkey:{answer.credential_id}"
            decision = await self.guard.attempt(client, account)
            if not decision.allowed:
                raise PasskeyLimited(decision)
            if decision.remaining == 0:
                await self.guard.tripped(db, client, account, decision)
            found = await self.passkeys.find(db, answer.credential_id)
            if pending is not None and found is not None and found[1].id != pending[1].id:
                found = None  # another account's passkey cannot finish this one's sign-in
            owner = found[1].email if found else pending[1].email if pending else None
            try:
                passkey = await self.passkeys.authenticate(db, answer, found)
            except PasskeyRefused as exc:
                await self._passkey_refused(db, exc, client, owner, "sign_in")
                if pending is not None and exc.reason is not Reason.MALFORMED:
                    await self.pending.fail(db, pending[0])
                raise
            assert found is not None
            user = found[1]
            self.events.on_second_factor(PASSKEY, "succeeded")
            if pending is not None:
                token = await self.complete_sign_in(db, pending[0], user, client, PASSKEY)
                if token is None:
                    raise PendingGone
                return user, token
            details = {"passkey": passkey.public_id, "method": PASSKEY}
            return user, await self.open_session(db, user, client, user.email, details)

    async def list_passkeys(self, token: str | None) -> list[Passkey] | None:
        """The signed-in user's passkeys, oldest first; None if signed out."""
        async with self.database.session() as db:
            found = await self.sessions.resolve(db, token) if token else None
            if found is None:
                return None
            return await self.passkeys.of_user(db, found[1].id)

    async def remove_passkey(self, token: str | None, public_id: str, client: Client) -> bool:
        """Remove one of the signed-in user's passkeys; False when none has this id.

        Raises NotSignedIn. Audited (``auth.passkey.removed``) and notified.
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            if len(public_id) > 64 or not await self.passkeys.remove(db, user.id, public_id):
                return False
            self.events.on_second_factor(PASSKEY, "disabled")
            await self._announce(db, PASSKEY_REMOVED, user, client, {"passkey": public_id})
            return True

    async def _passkey_refused(
        self,
        db: AsyncSession,
        exc: PasskeyRefused,
        client: Client,
        email: str | None,
        ceremony: str,
    ) -> None:
        """Count and audit a named refusal; a malformed answer is a plain 400, neither."""
        if exc.reason is Reason.MALFORMED:
            return  # a plain 400: it proves nothing about anyone, and changes nothing
        self.events.on_second_factor(PASSKEY, "refused")
        details: dict[str, object] = {"reason": exc.reason.value, "ceremony": ceremony}
        if exc.passkey is not None:
            details["passkey"] = exc.passkey.public_id
        entry = AuditEntry(
            PASSKEY_REFUSED,
            Outcome.FAILURE,
            subject=email,
            actor=email,
            client_ip=client.ip,
            user_agent=client.user_agent,
            details=details,
        )
        await record(db, entry)

    # -- the second factor: TOTP and backup codes (issue 24) ------------------------------------

    async def totp_state(self, user: User) -> TotpState:
        async with self.database.session() as db:
            row = await self.totp.find(db, user.id)
            left = await self.backup_codes.left(db, user.id)
        enabled = row is not None and row.confirmed_at is not None
        return TotpState(enabled, row is not None and not enabled, left if enabled else 0)

    async def totp_enroll(self, token: str | None, password: str, client: Client) -> Enrolment:
        """A new, unconfirmed TOTP secret for the signed-in user, shown this once.

        Needs a fresh proof of the password (:meth:`prove_password`: the
        sign-in limits and audit), checked first, as for every TOTP change. An
        unconfirmed secret is replaced; a confirmed one refuses (TotpConflict
        ``totp_enabled``) until TOTP is turned off. Raises NotSignedIn,
        TotpConflict, PasswordChangeLimited or WrongPassword.
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            await self.prove_password(db, user, password, client, "totp_enroll")
            row = await self.totp.find(db, user.id)
            if row is not None and row.confirmed_at is not None:
                raise TotpConflict(
                    TotpConflict.ENABLED, "TOTP is already on: turn it off before enrolling again"
                )
            enrolment = new_enrolment(user.email, self.site_name)
            await self.totp.enrol(db, user.id, enrolment.secret)
            await db.commit()
        return enrolment

    async def totp_confirm(self, token: str | None, code: str, client: Client) -> list[str]:
        """Turn TOTP on with its first right code; returns the ten backup codes (shown once).

        The code's step is claimed as any later code's is, so it cannot sign
        in afterwards. Raises NotSignedIn, TotpConflict (``totp_not_enrolled``,
        ``totp_enabled``) or WrongCode.
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            row = await self.totp.find(db, user.id)
            if row is None:
                raise TotpConflict(
                    TotpConflict.NOT_ENROLLED, "there is no TOTP enrolment to confirm: enrol first"
                )
            if row.confirmed_at is not None:
                raise TotpConflict(TotpConflict.ENABLED, "TOTP is already on")
            step = self.totp.check(row, code)
            if step is None or not await self.totp.claim(db, user.id, step, confirming=True):
                await db.rollback()
                raise WrongCode
            codes = await self.backup_codes.replace(db, user.id)
            await db.commit()
            self.events.on_second_factor(TOTP, "enabled")
            await self._announce(db, SECOND_FACTOR_ENABLED, user, client, {"method": TOTP})
        return codes

    async def replace_backup_codes(
        self, token: str | None, password: str, client: Client
    ) -> list[str]:
        """Ten new backup codes for the signed-in user (the old ones stop working).

        Needs TOTP on (TotpConflict ``totp_disabled``) and a fresh proof of the
        password. Raises NotSignedIn, TotpConflict, PasswordChangeLimited or
        WrongPassword.
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            await self.prove_password(db, user, password, client, "backup_codes")
            row = await self.totp.find(db, user.id)
            if row is None or row.confirmed_at is None:
                raise TotpConflict(TotpConflict.DISABLED, "TOTP is off: there are no backup codes")
            codes = await self.backup_codes.replace(db, user.id)
            await db.commit()
        self.events.on_second_factor(BACKUP_CODE, "replaced")
        return codes

    async def totp_disable(self, token: str | None, password: str, client: Client) -> None:
        """Turn TOTP off: its secret and backup codes are deleted (an enrolment too).

        Raises NotSignedIn, TotpConflict (``totp_disabled``: neither on nor
        being enrolled), PasswordChangeLimited or WrongPassword.
        """
        async with self.database.session() as db:
            user = await self._session_user(db, token)
            await self.prove_password(db, user, password, client, "totp_disable")
            if await self.totp.find(db, user.id) is None:
                raise TotpConflict(TotpConflict.DISABLED, "TOTP is already off")
            was_on = await self.totp.remove(db, user.id)
            await self.backup_codes.remove(db, user.id)
            await db.commit()
            if was_on:
                self.events.on_second_factor(TOTP, "disabled")
                await self._announce(db, SECOND_FACTOR_DISABLED, user, client, {"method": TOTP})

    async def sign_in_second_factor(
        self,
        pending_token: str | None,
        client: Client,
        *,
        code: str | None = None,
        backup_code: str | None = None,
    ) -> SecondFactorResult:
        """Complete a pending sign-in with a TOTP ``code`` or an unused ``backup_code``.

        The attempt counts against the same per-IP and per-account limits as
        a password (over them: RATE_LIMITED, nothing checked). A right code
        spends its time step (or the backup code) in one conditional UPDATE,
        is audited ``auth.second_factor.succeeded``, and the pending sign-in
        becomes a session through :meth:`complete_sign_in`. A wrong one is
        audited ``auth.second_factor.failed`` and counted on the pending
        sign-in, which the fifth one ends.
        """
        method = TOTP if code is not None else BACKUP_CODE
        async with self.database.session() as db:
            found = await self.pending.resolve(db, pending_token)
            if found is None:
                return SecondFactorResult(SecondFactorOutcome.NO_PENDING)
            pending, user = found
            guard = self.guard
            decision = await guard.attempt(client, user.email)
            if not decision.allowed:
                return SecondFactorResult(SecondFactorOutcome.RATE_LIMITED, decision=decision)
            if decision.remaining == 0:
                await guard.tripped(db, client, user.email, decision)
            problem = await self._second_factor_problem(db, user, code, backup_code)
            if problem is not None:
                # Nothing was spent (each UPDATE matched no row); fail() commits.
                ended = await self.pending.fail(db, pending)
                details = {"method": method, "reason": problem, "ended": ended}
                entry = self._entry(SECOND_FACTOR_FAILED, user, client, details)
                await record(db, replace(entry, outcome=Outcome.FAILURE, actor=None))
                self.events.on_second_factor(method, "failed")
                outcome = SecondFactorOutcome.ENDED if ended else SecondFactorOutcome.WRONG
                return SecondFactorResult(outcome, user=user, decision=decision)
            await db.commit()  # the step or the backup code is spent, whatever comes next
            await record(db, self._entry(SECOND_FACTOR_SUCCEEDED, user, client, {"method": method}))
            self.events.on_second_factor(method, "succeeded")
            token = await self.complete_sign_in(db, pending, user, client, method)
            if token is None:
                return SecondFactorResult(SecondFactorOutcome.NO_PENDING)
            return SecondFactorResult(SecondFactorOutcome.SIGNED_IN, user, token, decision)

    async def _second_factor_problem(
        self, db: AsyncSession, user: User, code: str | None, backup_code: str | None
    ) -> str | None:
        """None when the code or backup code is right and now spent; else the audit reason."""
        if code is None:
            used = await self.backup_codes.use(db, user.id, backup_code or "")
            return None if used else "wrong_backup_code"
        row = await self.totp.find(db, user.id)
        if row is None or row.confirmed_at is None:
            return "totp_disabled"
        step = self.totp.check(row, code)
        if step is None:
            return "wrong_code"
        if not await self.totp.claim(db, user.id, step):
            return "reused_step"
        return None
