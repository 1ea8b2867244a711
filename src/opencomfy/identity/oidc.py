"""A trusted external OpenID issuer (the role Firebase plays in the spec): its ID tokens are
accepted as identity tokens when signed by a key of its JWKS (a URL or a local file).

Only asymmetric algorithms are accepted; iss and aud must match the configuration."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import jwt
from jwt.types import Options

from opencomfy.identity.tokens import LEEWAY_S, TokenError

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
JWKS_MAX_AGE_S = 600
JWKS_MIN_REFRESH_S = 30  # an unknown kid refetches, but not more often than this


class ExternalIssuer:
    def __init__(self, *, issuer: str, jwks: str, audience: str | None) -> None:
        self.issuer, self.jwks_source, self.audience = issuer, jwks, audience
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        source = self.jwks_source
        if source.startswith(("http://", "https://")):
            import aiohttp

            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.get(source) as resp:
                    resp.raise_for_status()
                    document = await resp.json(content_type=None)
        else:
            document = json.loads(await asyncio.to_thread(Path(source).read_text))
        keys = {}
        for jwk in document.get("keys", []):
            try:
                key = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue
            keys[jwk.get("kid") or ""] = key
        self._keys, self._fetched_at = keys, time.monotonic()

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        age = time.monotonic() - self._fetched_at
        if kid not in self._keys or age > JWKS_MAX_AGE_S:
            if age > JWKS_MIN_REFRESH_S or not self._keys:
                async with self._lock:
                    try:
                        await self._fetch()
                    except Exception as exc:  # an unreachable issuer fails closed
                        log.warning("cannot load the JWKS of %s: %s", self.issuer, exc)
        return self._keys.get(kid)

    def is_from(self, token: str) -> bool:
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("iss") == self.issuer
        except (jwt.PyJWTError, ValueError, TypeError):
            return False

    async def verify(self, token: str) -> dict:
        """The claims of a valid ID token from this issuer; raises TokenError."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(f"malformed token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenError("unsupported token algorithm")
        key = await self._key(str(header.get("kid") or ""))
        if key is None:
            raise TokenError("unknown signing key")
        options: Options = {"require": ["exp", "iat", "sub", "iss"]}
        if self.audience is None:
            options["verify_aud"] = False
        try:
            return jwt.decode(token, key.key, algorithms=[header["alg"]], issuer=self.issuer,
                              audience=self.audience, leeway=LEEWAY_S, options=options)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from None
