"""`IdentityService`: turns credentials into a `Caller`, and issues credentials.

Built once by the composition root; the auth middleware and the identity routes use it.
The per-concept work lives in users / workspaces / invites / api_keys / sessions / tokens."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from opencomfy.config import Config
from opencomfy.db.database import Database
from opencomfy.identity import api_keys, sessions, users, workspaces
from opencomfy.identity.common import access_epoch, digest, iso, now_ms
from opencomfy.identity.errors import Forbidden, NotFound, RateLimited, Unauthenticated
from opencomfy.identity.oidc import ExternalIssuer
from opencomfy.identity.passwords import verify_password
from opencomfy.identity.principal import Caller
from opencomfy.identity.ratelimit import FailureLimiter, RateLimiter
from opencomfy.identity.tokens import (IDENTITY_AUDIENCE, WORKSPACE_AUDIENCE, SigningKeys,
                                       TokenError)

log = logging.getLogger(__name__)

# A resolved credential is reused for this long. Anything in this process that takes access
# away (revoke, remove, delete, logout) drops every cached resolution at once; the TTL bounds
# how long a change made by another process (a scale-out replica) takes to be seen.
RESOLVED_TTL_S = 1.0
MAX_RESOLVED = 10_000


@dataclass(frozen=True)
class SignedIn:
    """A password sign-in: the session for the cookie, and the identity token when asked."""

    user_id: str
    workspace_id: str
    session_token: str
    session_ttl_s: int
    identity_token: str | None = None
    identity_expires_s: int | None = None


class IdentityService:
    def __init__(self, *, db: Database, config: Config) -> None:
        self.db, self.config = db, config
        self.keys = SigningKeys(db=db, issuer=config.jwt_issuer,
                                rotation_s=int(config.jwt_rotation_days * 86400))
        self.external = (ExternalIssuer(issuer=config.oidc_issuer, jwks=config.oidc_jwks,
                                        audience=config.oidc_audience)
                         if config.oidc_issuer and config.oidc_jwks else None)
        self.rate_limiter = RateLimiter(per_minute=config.rate_limit_per_minute,
                                        burst=config.rate_limit_burst)
        self._resolved: dict[str, tuple[Caller, float, int, int | None]] = {}
        # Sign-in attempts per email (20 at once, then one every 6 s) and, looser because
        # offices share addresses, per client address.
        self.login_limiter = RateLimiter(per_minute=10, burst=20)
        self.login_ip_limiter = RateLimiter(per_minute=120, burst=200)
        # Failed credential attempts per client address (429 once over; see http/auth.py).
        self.failure_limiter = FailureLimiter(limit=config.auth_failures_per_minute)

    def _cached(self, key: str) -> Caller | None:
        hit = self._resolved.get(key)
        if hit is None:
            return None
        caller, at, epoch, expires_ms = hit
        if (epoch != access_epoch(self.db) or time.monotonic() - at > RESOLVED_TTL_S
                or (expires_ms is not None and expires_ms <= now_ms())):
            self._resolved.pop(key, None)
            return None
        return caller

    def _remember(self, key: str, caller: Caller, expires_ms: int | None, epoch: int) -> Caller:
        if len(self._resolved) >= MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[key] = (caller, time.monotonic(), epoch, expires_ms)
        return caller

    async def open(self) -> None:
        await self.keys.load()
        if self.config.auth == "required":
            await self.keys.current()  # the first key exists before the first token

    # ------------------------------------------------------------------ credentials -> Caller

    async def from_api_key(self, key: str) -> Caller:
        cache_key = "k:" + digest(key)
        if (hit := self._cached(cache_key)) is not None:
            return hit
        epoch = access_epoch(self.db)  # before the read: a revocation during it is not missed
        row = await api_keys.verify(db=self.db, key=key)
        if row is None:
            raise Unauthenticated("invalid, revoked or expired API key")
        caller = Caller(user_id=row["user_id"], workspace_id=row["workspace_id"], role=row["role"],
                        credential="api_key", credential_id="key:" + row["id"])
        return self._remember(cache_key, caller, row["expires_at"], epoch)

    async def from_session(self, token: str) -> Caller:
        cache_key = "s:" + digest(token)
        if (hit := self._cached(cache_key)) is not None:
            return hit
        epoch = access_epoch(self.db)
        row = await sessions.verify(db=self.db, token=token)
        if row is None:
            raise Unauthenticated("invalid or expired session")
        caller = Caller(user_id=row["user_id"], workspace_id=row["workspace_id"], role=row["role"],
                        credential="session", credential_id="session:" + row["id"])
        return self._remember(cache_key, caller, row["expires_at"], epoch)

    async def from_bearer(self, token: str) -> Caller:
        """Our workspace token, our identity token, or the external issuer's ID token."""
        if len(token) > 8192 or not token.isascii():
            raise Unauthenticated("invalid token: malformed")
        cache_key = "b:" + token
        if (hit := self._cached(cache_key)) is not None:
            return hit
        epoch = access_epoch(self.db)
        caller, expires_s = await self._resolve_bearer(token)
        return self._remember(cache_key, caller, expires_s * 1000 if expires_s else None, epoch)

    async def _resolve_bearer(self, token: str) -> tuple[Caller, int | None]:
        """(caller, the token's exp) for a bearer token; raises Unauthenticated."""
        try:
            if self.external is not None and self.external.is_from(token):
                claims = await self.external.verify(token)
                return await self._from_external(claims), claims.get("exp")
            if not self.keys.looks_like_ours(token):
                raise TokenError("token from an untrusted issuer")
            if self.keys.unverified_audience(token) != WORKSPACE_AUDIENCE:
                claims = await self.keys.verify(token, audience=IDENTITY_AUDIENCE)
                caller = await self._personal_caller(claims["sub"], credential="identity")
                return caller, claims["exp"]
            claims = await self.keys.verify(token, audience=WORKSPACE_AUDIENCE)
            workspace_id = str(claims.get("ws"))
            role = await workspaces.role_of(db=self.db, workspace_id=workspace_id,
                                            user_id=claims["sub"])
            if role is None:  # removed (or the workspace deleted) since the token was minted
                raise TokenError("no longer a member of the token's workspace")
            return Caller(user_id=claims["sub"], workspace_id=workspace_id, role=role,
                          credential="token", credential_id="sub:" + claims["sub"]), claims["exp"]
        except TokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None

    async def _from_external(self, claims: dict) -> Caller:
        assert self.external is not None
        user = await users.get_user_by_external(db=self.db, issuer=self.external.issuer,
                                                subject=str(claims["sub"]))
        if user is None:
            user = await self._provision_external(claims, issuer=self.external.issuer)
        return await self._personal_caller(user["id"], credential="oidc")

    async def _provision_external(self, claims: dict, *, issuer: str) -> dict:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is False:
            raise TokenError("the token carries no verified email")
        existing = await users.get_user_by_email(db=self.db, email=email)
        if existing is not None:
            # Never link to an account that a different issuer or subject already owns.
            if existing["external_issuer"] is not None:
                raise TokenError("email already bound to another identity")
            return existing
        return await users.create_user(db=self.db, email=email, name=claims.get("name"),
                                       external_issuer=issuer,
                                       external_subject=str(claims["sub"]))

    async def _personal_caller(self, user_id: str, *, credential: str) -> Caller:
        user = await users.get_user(db=self.db, user_id=user_id)
        if user is None or user["status"] != users.ACTIVE:
            raise TokenError("unknown or inactive user")
        workspace_id = await users.personal_workspace_id(db=self.db, user_id=user_id)
        if workspace_id is None:
            raise TokenError("the user has no personal workspace")
        return Caller(user_id=user_id, workspace_id=workspace_id, role="owner",
                      credential=credential, credential_id="sub:" + user_id, email=user["email"])

    async def in_workspace(self, caller: Caller, workspace_id: str) -> Caller:
        """The caller acting in another workspace (X-Comfy-Workspace-ID), checked against
        membership: NotFound when not a member, so a workspace's existence does not leak."""
        if workspace_id == caller.workspace_id:
            return caller
        if caller.workspace_bound:
            raise NotFound("workspace not found")
        cache_key = f"w:{caller.credential_id}:{workspace_id}"
        if (hit := self._cached(cache_key)) is not None:
            return hit
        epoch = access_epoch(self.db)
        role = await workspaces.role_of(db=self.db, workspace_id=workspace_id,
                                        user_id=caller.user_id)
        if role is None:
            raise NotFound("workspace not found")
        moved = Caller(user_id=caller.user_id, workspace_id=workspace_id, role=role,
                       credential=caller.credential, credential_id=caller.credential_id,
                       email=caller.email)
        return self._remember(cache_key, moved, None, epoch)

    # ------------------------------------------------------------------ issuing credentials

    async def login(self, *, email: str, password: str) -> dict:
        """Check a password; returns the user. Unauthenticated on any mismatch (one message,
        and the same argon2 cost for unknown emails)."""
        user = await users.get_user_by_email(db=self.db, email=email) if email else None
        ok = await verify_password(user["password_hash"] if user else None, password)
        if not ok or user is None or user["status"] != users.ACTIVE:
            raise Unauthenticated("wrong email or password")
        return user

    async def sign_in(self, *, email: str, password: str, address: str,
                      with_identity_token: bool = False) -> SignedIn:
        """A password sign-in from a client `address`, opening a session in the user's personal
        workspace. Password guessing is slowed per email and per address: RateLimited (before
        anything is checked); a wrong password is Unauthenticated and counts against the address."""
        wait = max(self.failure_limiter.wait(address),
                   self.login_limiter.check("email:" + email.strip().lower()),
                   self.login_ip_limiter.check("ip:" + address))
        if wait:
            raise RateLimited("too many sign-in attempts", retry_after=wait)
        try:
            user = await self.login(email=email, password=password)
        except Unauthenticated:
            self.failure_limiter.record(address)
            raise
        workspace_id = await users.personal_workspace_id(db=self.db, user_id=user["id"])
        if workspace_id is None:  # every account gets one at creation; never sign in without it
            raise Forbidden("the account has no personal workspace")
        token, _ = await sessions.create(db=self.db, user_id=user["id"], workspace_id=workspace_id)
        signed = SignedIn(user_id=user["id"], workspace_id=workspace_id, session_token=token,
                          session_ttl_s=sessions.SESSION_TTL_MS // 1000)
        if not with_identity_token:
            return signed
        id_token, expires_s = await self.identity_token(user_id=user["id"])
        return replace(signed, identity_token=id_token, identity_expires_s=expires_s)

    async def exchange_for_workspace(self, *, user_id: str, workspace_id: str) -> dict:
        """A workspace-scoped token of ours for a member of `workspace_id`: `{token, expires_at,
        workspace: {id, name, type}, role}`. NotFound when not a member."""
        role = await workspaces.role_of(db=self.db, workspace_id=workspace_id, user_id=user_id)
        if role is None:
            raise NotFound("workspace not found")
        workspace = await workspaces.get(db=self.db, user_id=user_id, workspace_id=workspace_id)
        token, expires_s = await self.workspace_token(user_id=user_id, workspace_id=workspace_id,
                                                      role=role)
        return {"token": token, "expires_at": iso(expires_s * 1000),
                "workspace": {k: workspace[k] for k in ("id", "name", "type")}, "role": role}

    async def identity_token(self, *, user_id: str) -> tuple[str, int]:
        return await self.keys.sign({"sub": user_id}, audience=IDENTITY_AUDIENCE)

    async def workspace_token(self, *, user_id: str, workspace_id: str, role: str) -> tuple[str, int]:
        return await self.keys.sign({"sub": user_id, "ws": workspace_id, "role": role},
                                    audience=WORKSPACE_AUDIENCE)
