"""Turning a presented credential (JWT or chatterID) into a user, and keeping revocations current on every worker."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import models
from auth.directory import Directory
from auth.tokens import AccessClaims, InvalidToken, TokenCodec, hash_chatter_id, looks_like_jwt
from core.metrics import REVOCATIONS
from db.events import Events
from db.pool import Database
from models.records import User

logger = logging.getLogger(__name__)

CHATTER_ID_CACHE_LIMIT = 100_000
VERIFIED_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Credential:
    """What the caller presented: a verified JWT's claims, or a chatterID's hash."""

    claims: AccessClaims | None = None
    chatter_id_hash: bytes | None = None


class RevocationStore:
    """This worker's view of what was revoked: JWT ids, refresh families, and a cache of live chatterIDs.

    Filled from Postgres at start and kept current by the events channel, so checking a JWT costs no query.
    While the listener is down the chatterID cache is bypassed and JWTs are checked in Postgres, so a missed logout
    cannot keep either alive.
    """

    def __init__(self, events: Events, token_lifetime: float) -> None:
        self._events = events
        self._token_lifetime = token_lifetime
        self._jtis: dict[str, float] = {}
        self._families: dict[str, float] = {}
        self._chatter_ids: dict[bytes, tuple[int, float]] = {}  # chatterID hash: user id, expiry

    @property
    def live(self) -> bool:
        """Whether notices are flowing, so cached chatterIDs may be trusted."""
        return self._events.live

    def is_revoked(self, claims: AccessClaims) -> bool:
        """True when this JWT was logged out or its refresh family revoked (the user's standing is the Directory's)."""
        return claims.jti in self._jtis or (claims.session_id is not None and claims.session_id in self._families)

    def revoke_family(self, family_id: str, at: float) -> None:
        """Refuse every access token minted for this refresh-token family."""
        self._families[family_id] = at

    def revoke_token(self, jti: str, expires_at: float) -> None:
        """Refuse this JWT id until it expires."""
        self._jtis[jti] = expires_at

    def end_chatter_id(self, chatter_id_hash: bytes) -> None:
        """Forget a chatterID."""
        self._chatter_ids.pop(chatter_id_hash, None)

    def forget_user(self, user_id: int) -> None:
        """Forget the user's cached chatterIDs (they were ended, or the user's standing changed)."""
        for key in [key for key, (owner, _) in self._chatter_ids.items() if owner == user_id]:
            del self._chatter_ids[key]

    def cached_chatter_id(self, chatter_id_hash: bytes, now: float) -> int | None:
        """The cached user id of a live chatterID, if the cache may be trusted right now."""
        entry = self._chatter_ids.get(chatter_id_hash) if self.live else None
        if entry is None:
            return None
        if entry[1] <= now:
            del self._chatter_ids[chatter_id_hash]
            return None
        return entry[0]

    def cache_chatter_id(self, chatter_id_hash: bytes, user_id: int, expires_at: float) -> None:
        """Remember a chatterID's user until it expires (only while notifications are flowing)."""
        if not self.live:
            return
        if len(self._chatter_ids) >= CHATTER_ID_CACHE_LIMIT:
            self._prune_chatter_ids(time.time())
            if len(self._chatter_ids) >= CHATTER_ID_CACHE_LIMIT:
                self._chatter_ids.clear()
        self._chatter_ids[chatter_id_hash] = (user_id, expires_at)

    def apply(self, notice: str) -> None:
        """Apply a notice from another worker (see `notice_*`; several may come space-separated); others are ignored."""
        for part in notice.split():
            kind, _, rest = part.partition(":")
            try:
                if kind == "jti":
                    expires_at, _, jti = rest.partition(":")
                    self.revoke_token(jti, float(expires_at))
                elif kind == "cid":
                    self.end_chatter_id(bytes.fromhex(rest))
                elif kind == "user":
                    self.forget_user(int(rest))
                elif kind == "fam":
                    self.revoke_family(rest, time.time())
            except ValueError:
                logger.warning("ignoring malformed revocation notice %r", part[:80])

    async def reload(self) -> None:
        """Take a fresh copy of the revocations from the database; cached chatterIDs are dropped."""
        since = time.time() - self._token_lifetime - 60
        revocations = await models.load_revocations(self._events.db, since=since)
        self._jtis, self._families = revocations.jtis, revocations.families
        self._chatter_ids.clear()
        logger.info("loaded %d revoked tokens", len(self._jtis))

    def tick(self, now: float) -> None:
        """Drop what can no longer matter: expired JWT ids, families older than any live token, expired chatterIDs."""
        self._jtis = {jti: exp for jti, exp in self._jtis.items() if exp > now - 60}
        self._families = {fam: at for fam, at in self._families.items() if at > now - self._token_lifetime - 60}
        self._prune_chatter_ids(now)

    def _prune_chatter_ids(self, now: float) -> None:
        self._chatter_ids = {key: entry for key, entry in self._chatter_ids.items() if entry[1] > now}


def notice_token(claims: AccessClaims) -> str:
    """The notice that revokes one JWT (and its refresh family, if it has one)."""
    notice = f"jti:{claims.expires_at}:{claims.jti}"
    return f"{notice} {notice_family(claims.session_id)}" if claims.session_id else notice


def notice_family(family_id: str) -> str:
    """The notice that revokes every access token of a refresh-token family."""
    return f"fam:{family_id}"


def notice_chatter_id(chatter_id_hash: bytes) -> str:
    """The notice that ends one chatterID."""
    return f"cid:{chatter_id_hash.hex()}"


class Authenticator:
    """Resolves a credential string to a user: JWTs in memory, chatterIDs through a cache in front of Postgres."""

    def __init__(self, codec: TokenCodec, store: RevocationStore, directory: Directory, db: Database) -> None:
        self.codec = codec
        self.store = store
        self.directory = directory
        self.db = db
        # Signature checks of tokens seen before, by their exact text: a client sends one token many times.
        self._verified: dict[str, AccessClaims] = {}

    async def resolve(self, token: str) -> tuple[User, Credential] | None:
        """The user and credential behind `token`, or None when it is invalid, expired or revoked.

        The user's name and role come from their current standing, never from the token: a demotion, a rename,
        a ban or a deletion applies to credentials already issued.
        """
        now = time.time()
        if looks_like_jwt(token):
            claims = self._verified.get(token)
            if claims is None or claims.expires_at <= now:
                try:
                    claims = self.codec.decode(token)  # checks exp itself, with its leeway
                except InvalidToken:
                    self._verified.pop(token, None)
                    return None
                if len(self._verified) >= VERIFIED_CACHE_LIMIT:
                    self._verified.clear()
                self._verified[token] = claims
            if self.store.is_revoked(claims):
                return None
            # Without the listener a logout on another worker could be missed: ask Postgres, as for chatterIDs.
            if not self.store.live and await models.token_revoked(self.db, jti=claims.jti, family_id=claims.session_id):
                return None
            standing = await self.directory.standing(claims.user_id, at_least=claims.standing_version)
            if standing is None or not standing.admits(claims.issued_at, now):
                return None
            return standing.user, Credential(claims=claims)
        chatter_id_hash = hash_chatter_id(token)
        if chatter_id_hash is None:
            return None
        user_id = self.store.cached_chatter_id(chatter_id_hash, now)
        if user_id is None:
            found = await models.chatter_id_user(self.db, chatter_id_hash)
            if found is None:
                return None
            user_id, expires_at = found
            self.store.cache_chatter_id(chatter_id_hash, user_id, expires_at)
        standing = await self.directory.standing(user_id)
        if standing is None or not standing.admits(None, now):
            return None
        return standing.user, Credential(chatter_id_hash=chatter_id_hash)

    async def revoke(self, credential: Credential, user_id: int, address: str) -> None:
        """Make this credential stop working at once, here and on every worker sharing the database."""
        if credential.claims is not None:
            claims = credential.claims
            REVOCATIONS.labels("jwt").inc()
            self.store.revoke_token(claims.jti, claims.expires_at)
            if claims.session_id:
                self.store.revoke_family(claims.session_id, time.time())
            await models.revoke_token(
                self.db,
                jti=claims.jti,
                expires_at=claims.expires_at,
                family_id=claims.session_id,
                user_id=user_id,
                address=address,
                notice=notice_token(claims),
            )
        elif credential.chatter_id_hash is not None:
            REVOCATIONS.labels("chatterid").inc()
            self.store.end_chatter_id(credential.chatter_id_hash)
            await models.end_chatter_id(
                self.db,
                chatter_id_hash=credential.chatter_id_hash,
                user_id=user_id,
                address=address,
                notice=notice_chatter_id(credential.chatter_id_hash),
            )

    def family_reused(self, family_id: str) -> None:
        """Refuse a refresh family's access tokens here at once (the database announces it to the other workers)."""
        self.store.revoke_family(family_id, time.time())

    async def revoke_all(self, user_id: int, *, address: str, reason: str) -> None:
        """Log a user out everywhere: every JWT issued until now, every chatterID and refresh token."""
        REVOCATIONS.labels("all").inc()
        # The users row's trigger tells every worker; this one forgets at once, after the change is committed.
        await models.end_all_sessions(self.db, user_id=user_id, cutoff=time.time(), address=address, reason=reason)
        self.store.forget_user(user_id)
        self.directory.forget(user_id)
