"""Our JWTs: ES256, signed with rotating keys kept in the database, published as a JWKS.

Two kinds, told apart by audience:
- identity tokens (`aud` = IDENTITY_AUDIENCE): who the user is, from the login; exchanged at
  `POST /api/auth/token` for
- workspace tokens (`aud` = WORKSPACE_AUDIENCE): a user acting in one workspace with a role.

Verification accepts ES256 only (no `none`, no HMAC: a token "signed" with our public key as
an HMAC secret is refused), and requires iss, aud, exp, iat and sub.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import jwt
import jwt.algorithms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, select

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import now_ms

ALGORITHM = "ES256"
IDENTITY_AUDIENCE = "opencomfy:identity"
WORKSPACE_AUDIENCE = "opencomfy:workspace"
TOKEN_TTL_S = 3600
LEEWAY_S = 5


class TokenError(Exception):
    """A token that is not ours, not valid, or not valid any more."""


class SigningKeys:
    """The signing keys: the newest signs; all keys younger than two rotation periods verify
    (and are published), so tokens signed just before a rotation stay valid until they expire."""

    def __init__(self, *, db: Database, issuer: str, rotation_s: int) -> None:
        self.db, self.issuer, self.rotation_s = db, issuer, rotation_s
        self._keys: dict[str, tuple[int, ec.EllipticCurvePrivateKey]] = {}
        self._lock = asyncio.Lock()
        self._jwks_cache: bytes | None = None

    async def load(self) -> None:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(m.signing_keys))).mappings().all()
        keys = {}
        for row in rows:
            key = serialization.load_pem_private_key(row["private_pem"].encode(), password=None)
            keys[row["kid"]] = (row["created_at"], key)
        self._keys = keys
        self._jwks_cache = None

    def _live(self) -> dict[str, tuple[int, ec.EllipticCurvePrivateKey]]:
        oldest = now_ms() - 2 * self.rotation_s * 1000
        return {kid: v for kid, v in self._keys.items() if v[0] >= oldest}

    async def current(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The newest key, rotating first when it is older than the rotation period."""
        newest = max(self._keys.items(), key=lambda kv: kv[1][0], default=None)
        if newest is not None and now_ms() - newest[1][0] < self.rotation_s * 1000:
            return newest[0], newest[1][1]
        async with self._lock:
            await self.load()  # another replica may have rotated already
            newest = max(self._keys.items(), key=lambda kv: kv[1][0], default=None)
            if newest is not None and now_ms() - newest[1][0] < self.rotation_s * 1000:
                return newest[0], newest[1][1]
            return await self.rotate()

    async def rotate(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = uuid.uuid4().hex
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        stamp = now_ms()
        async with self.db.write() as conn:
            await conn.execute(insert(m.signing_keys).values(kid=kid, private_pem=pem,
                                                             created_at=stamp))
        self._keys[kid] = (stamp, key)
        self._jwks_cache = None
        return kid, key

    def jwks_bytes(self) -> bytes:
        """The JWKS document (public halves of the live keys), built once per key change."""
        if self._jwks_cache is None:
            keys = []
            for kid, (_, key) in sorted(self._live().items(), key=lambda kv: -kv[1][0]):
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
                keys.append({"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"],
                             "kid": kid, "use": "sig", "alg": ALGORITHM})
            self._jwks_cache = json.dumps({"keys": keys}).encode()
        return self._jwks_cache

    async def sign(self, claims: dict, *, audience: str, ttl_s: int = TOKEN_TTL_S) -> tuple[str, int]:
        kid, key = await self.current()
        now = int(time.time())
        payload = {**claims, "iss": self.issuer, "aud": audience, "iat": now, "nbf": now,
                   "exp": now + ttl_s, "jti": uuid.uuid4().hex}
        return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid}), now + ttl_s

    async def verify(self, token: str, *, audience: str) -> dict:
        """The claims of a valid token of ours for `audience`; raises TokenError."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._live():
            await self.load()  # a key another replica just made
            if not isinstance(kid, str) or kid not in self._live():
                raise TokenError("unknown signing key")
        public = self._live()[kid][1].public_key()
        try:
            return jwt.decode(token, public, algorithms=[ALGORITHM], audience=audience,
                              issuer=self.issuer, leeway=LEEWAY_S,
                              options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from None

    def looks_like_ours(self, token: str) -> bool:
        """Routing only (which verifier to use); never a trust decision."""
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("iss") == self.issuer
        except (jwt.PyJWTError, ValueError, TypeError):
            return False

    @staticmethod
    def unverified_audience(token: str) -> object:
        """Routing only: which of our audiences the token claims (verified afterwards)."""
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("aud")
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
