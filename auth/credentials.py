"""Turning a presented credential (JWT or chatterID) into a user and its session, and ending sessions everywhere."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import models
from auth.activity import SessionActivity
from auth.directory import Directory
from auth.tokens import AccessClaims, InvalidToken, TokenCodec, hash_chatter_id, looks_like_jwt
from core.metrics import REVOCATIONS, SESSIONS_ENDED
from db.events import Events
from db.pool import Database
from mail.messages import Letter
from models.records import ChatterIdOwner, Ending, SessionPolicy, User

logger = logging.getLogger(__name__)

CHATTER_ID_CACHE_LIMIT = 100_000
VERIFIED_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Credential:
    """What the caller presented, a verified JWT's claims or a chatterID's hash, and the session it belongs to."""

    claims: AccessClaims | None = None
    chatter_id_hash: bytes | None = None
    session_id: str | None = None

    @property
    def jwt_claims(self) -> AccessClaims:
        """The claims of a credential that is a JWT."""
        assert self.claims is not None
        return self.claims

    @property
    def expires_at(self) -> float:
        """When a JWT credential expires (a chatterID's expiry is its session's, kept in Postgres)."""
        return self.jwt_claims.expires_at

    @property
    def kind(self) -> str:
        """`jwt` or `chatterid` (the login cookie carries a JWT)."""
        return "jwt" if self.claims is not None else "chatterid"


class RevocationStore:
    """This worker's view of what was revoked: JWT ids, ended sessions, and a cache of live chatterIDs.

    Filled from Postgres at start and kept current by the events channel, so checking a JWT costs no query.
    While the listener is down the chatterID cache is bypassed and JWTs are checked in Postgres, so a missed logout
    cannot keep either alive.
    """

    def __init__(self, events: Events, retention: float) -> None:
        self._events = events
        self._retention = retention  # seconds an ended session is remembered: longer than any credential of it lives
        self._jtis: dict[str, float] = {}
        self._sessions: dict[str, float] = {}  # ended session id: when
        self._chatter_ids: dict[bytes, ChatterIdOwner] = {}
        # Bumped by every notice and reload: a chatterID read from the database before a bump may be stale.
        self.generation = 0

    @property
    def live(self) -> bool:
        """Whether notices are flowing, so cached chatterIDs may be trusted."""
        return self._events.live

    def is_revoked(self, claims: AccessClaims) -> bool:
        """True when this JWT was logged out or its session ended (the user's standing is the Directory's)."""
        return claims.jti in self._jtis or self.session_ended(claims.session_id)

    def session_ended(self, session_id: str | None) -> bool:
        """True when this session was ended (within the retention)."""
        return session_id is not None and session_id in self._sessions

    def end_session(self, session_id: str, at: float) -> None:
        """Refuse every credential of this session: its JWTs by `sid`, its chatterID when it is looked up."""
        self.generation += 1
        self._sessions[session_id] = at

    def revoke_token(self, jti: str, expires_at: float) -> None:
        """Refuse this JWT id until it expires."""
        self._jtis[jti] = expires_at

    def forget_user(self, user_id: int) -> None:
        """Forget the user's cached chatterIDs (they were ended, or the user's standing changed)."""
        self.generation += 1
        for key in [key for key, owner in self._chatter_ids.items() if owner.user_id == user_id]:
            del self._chatter_ids[key]

    def cached_chatter_id(self, chatter_id_hash: bytes, now: float) -> ChatterIdOwner | None:
        """The cached owner of a live chatterID, if the cache may be trusted right now."""
        owner = self._chatter_ids.get(chatter_id_hash) if self.live else None
        if owner is None:
            return None
        if owner.expires_at <= now:
            del self._chatter_ids[chatter_id_hash]
            return None
        return owner

    def cache_chatter_id(self, chatter_id_hash: bytes, owner: ChatterIdOwner, generation: int) -> None:
        """Remember a chatterID's owner until it expires, if it was read from the database at `generation` (no notice
        since, which the row read might predate) and notices are flowing."""
        if not self.live or generation != self.generation:
            return
        if len(self._chatter_ids) >= CHATTER_ID_CACHE_LIMIT:
            self._prune_chatter_ids(time.time())
            if len(self._chatter_ids) >= CHATTER_ID_CACHE_LIMIT:
                self._chatter_ids.clear()
        self._chatter_ids[chatter_id_hash] = owner

    def apply(self, notice: str) -> None:
        """Apply a notice from another worker (see `notice_*`; several may come space-separated); others are ignored."""
        for part in notice.split():
            kind, _, rest = part.partition(":")
            try:
                if kind == "jti":
                    expires_at, _, jti = rest.partition(":")
                    self.revoke_token(jti, float(expires_at))
                elif kind == "user":
                    self.forget_user(int(rest))
                elif kind == "session" and rest:
                    self.end_session(rest, time.time())
            except ValueError:
                logger.warning("ignoring malformed revocation notice %r", part[:80])

    async def reload(self) -> None:
        """Take a fresh copy of the revocations from the database; cached chatterIDs are dropped."""
        self.generation += 1
        since = time.time() - self._retention
        revocations = await models.load_revocations(self._events.db, since=since)
        self._jtis, self._sessions = revocations.jtis, revocations.sessions
        self._chatter_ids.clear()
        logger.info("loaded %d revoked tokens and %d ended sessions", len(self._jtis), len(self._sessions))

    def tick(self, now: float) -> None:
        """Drop what can no longer matter: expired JWT ids, sessions ended before any live credential, expired
        chatterIDs."""
        self._jtis = {jti: exp for jti, exp in self._jtis.items() if exp > now - 60}
        self._sessions = {sid: at for sid, at in self._sessions.items() if at > now - self._retention}
        self._prune_chatter_ids(now)

    def _prune_chatter_ids(self, now: float) -> None:
        self._chatter_ids = {key: owner for key, owner in self._chatter_ids.items() if owner.expires_at > now}


def notice_token(claims: AccessClaims) -> str:
    """The notice that revokes one JWT of no session."""
    return f"jti:{claims.expires_at}:{claims.jti}"


def notice_session(session_id: str) -> str:
    """The notice that ends every credential of a session."""
    return f"session:{session_id}"


class Authenticator:
    """Resolves a credential string to a user: JWTs in memory, chatterIDs through a cache in front of Postgres; ends
    sessions here at once and, through the database, on every worker and server."""

    def __init__(
        self,
        codec: TokenCodec,
        store: RevocationStore,
        directory: Directory,
        db: Database,
        activity: SessionActivity,
        policy: SessionPolicy,
    ) -> None:
        self.codec = codec
        self.store = store
        self.directory = directory
        self.db = db
        self.activity = activity
        self.policy = policy
        # Signature checks of tokens seen before, by their exact text (a client sends one token many times), with the
        # credential each stands for (immutable). Revocation and standing are checked on every use, never kept here.
        self._verified: dict[str, Credential] = {}

    async def resolve(self, token: str) -> tuple[User, Credential] | None:
        """The user and credential behind `token`, or None when it is invalid, expired or revoked.

        The user's name and role come from their current standing, never from the token: a demotion, a rename,
        a ban or a deletion applies to credentials already issued. A use of a session is noted (at most one write a
        minute per session).
        """
        now = time.time()
        credential = self._verified.get(token)  # only a JWT whose signature was checked is there
        if credential is not None or looks_like_jwt(token):
            if credential is None or credential.expires_at <= now:
                try:
                    claims = self.codec.decode(token)  # checks exp itself, with its leeway
                except InvalidToken:
                    self._verified.pop(token, None)
                    return None
                if len(self._verified) >= VERIFIED_CACHE_LIMIT:
                    self._verified.clear()
                credential = self._verified[token] = Credential(claims=claims, session_id=claims.session_id)
            claims = credential.jwt_claims
            if self.store.is_revoked(claims):
                return None
            # Without the listener a logout on another worker could be missed: ask Postgres, as for chatterIDs.
            if not self.store.live and await models.token_revoked(
                self.db, jti=claims.jti, session_id=claims.session_id
            ):
                return None
            standing = await self.directory.standing(claims.user_id, at_least=claims.standing_version)
            if standing is None or not standing.admits(claims.issued_at, now):
                return None
            if claims.session_id is not None:
                self.activity.seen(claims.session_id, now, written_at=claims.issued_at)
            return standing.user, credential
        chatter_id_hash = hash_chatter_id(token)
        if chatter_id_hash is None:
            return None
        owner = self.store.cached_chatter_id(chatter_id_hash, now)
        if owner is None:
            generation = self.store.generation
            owner = await models.chatter_id_owner(self.db, chatter_id_hash)
            if owner is None:
                return None
            self.store.cache_chatter_id(chatter_id_hash, owner, generation)
        if self.store.session_ended(owner.session_id):
            return None
        standing = await self.directory.standing(owner.user_id)
        if standing is None or not standing.admits(None, now):
            return None
        self.activity.seen(owner.session_id, now)
        return standing.user, Credential(chatter_id_hash=chatter_id_hash, session_id=owner.session_id)

    async def logout(self, credential: Credential, user_id: int, address: str) -> None:
        """End the session of this credential, every credential of it, at once here and everywhere."""
        REVOCATIONS.labels(credential.kind).inc()
        if credential.session_id is not None:
            await self.end_session(
                user_id, credential.session_id, address=address, event="logout", reason="logout", kind=credential.kind
            )
        elif credential.claims is not None:
            # A JWT of no session (issued before sessions were): only it can end.
            claims = credential.claims
            self.store.revoke_token(claims.jti, claims.expires_at)
            await models.revoke_token(
                self.db,
                jti=claims.jti,
                expires_at=claims.expires_at,
                user_id=user_id,
                address=address,
                notice=notice_token(claims),
            )

    async def end_session(
        self,
        user_id: int,
        session_id: str,
        *,
        address: str,
        event: str = "session_revoked",
        reason: str = "revoked",
        kind: str | None = None,
        live_only: bool = False,
    ) -> bool:
        """End one of the user's sessions everywhere; False when it is not theirs, already over, or (with `live_only`)
        past its idle or absolute limit."""
        ending = Ending(event, reason, address, notice_session, kind)
        policy = self.policy if live_only else None
        ended = await models.end_session(self.db, user_id=user_id, session_id=session_id, ending=ending, policy=policy)
        self.ended(user_id, [session_id] if ended else [], reason)
        return ended

    async def end_other_sessions(
        self, user_id: int, keep: str | None, *, address: str, reason: str, event: str = "session_revoked"
    ) -> list[str]:
        """End every session of the user but `keep` (a session id; None ends them all), everywhere; the ids ended.

        What "sign out everywhere else" does.
        """
        ended = await models.end_other_sessions(
            self.db, user_id=user_id, keep_session_id=keep, ending=self.ending(address, reason, event=event)
        )
        self.ended(user_id, ended, reason)
        return ended

    @staticmethod
    def ending(address: str, reason: str, *, event: str = "session_revoked", letter: Letter | None = None) -> Ending:
        """How sessions ending for `reason` are audited and announced (and, with `letter`, told to the user)."""
        return Ending(event, reason, address, notice_session, letter=letter)

    def ended(self, user_id: int, session_ids: list[str], reason: str, *, cut_off: bool = False) -> None:
        """Refuse these sessions of the user here at once, once their ending is committed: the notices reach this
        worker too, but after the requests coming now. With `cut_off`, the user's JWTs issued until then too."""
        now = time.time()
        for session_id in session_ids:
            self.store.end_session(session_id, now)
        SESSIONS_ENDED.labels(reason).inc(len(session_ids))
        if cut_off:
            self.standing_changed(user_id)

    def session_reused(self, session_id: str) -> None:
        """Refuse a session's credentials here at once (its ending was announced to the other workers)."""
        REVOCATIONS.labels("reuse").inc()
        SESSIONS_ENDED.labels("refresh_reuse").inc()
        self.store.end_session(session_id, time.time())

    async def revoke_all(self, user_id: int, *, address: str, reason: str) -> None:
        """Log a user out everywhere: every session, and every JWT issued until now."""
        REVOCATIONS.labels("all").inc()
        ending = self.ending(address, reason, event="logout_everywhere")
        ended = await models.end_all_sessions(self.db, user_id=user_id, cutoff=time.time(), ending=ending)
        self.ended(user_id, ended, reason, cut_off=True)

    def standing_changed(self, user_id: int) -> None:
        """Forget, here and at once, what this worker knows of a user whose standing was just committed changed
        (banned, deleted, demoted, renamed, logged out everywhere): the users row's trigger tells every other worker."""
        self.store.forget_user(user_id)
        self.directory.forget(user_id)
