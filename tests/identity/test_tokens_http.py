"""Our JWTs (JWKS, exchange, claim checks) and the attacks on them, over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.tenants import assert_conforms, database_url, new_tenant


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _server_signing_key(server) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """The server's newest signing key, read from its database (a test-only shortcut to forge
    tokens that are correctly signed but carry bad claims)."""
    from sqlalchemy import select

    from opencomfy.db.database import Database
    from opencomfy.identity import models as m

    async def read():
        db = await Database.open(database_url(server), migrate=False)
        try:
            async with db.read() as conn:
                row = (await conn.execute(select(m.signing_keys).order_by(
                    m.signing_keys.c.created_at.desc()).limit(1))).mappings().first()
        finally:
            await db.close()
        return row["kid"], serialization.load_pem_private_key(row["private_pem"].encode(), None)

    return asyncio.run(read())


def _status(server, token: str) -> int:
    return server.get("/api/user", headers={"Authorization": f"Bearer {token}"}).status


def test_jwks_published_with_cache_headers(auth_server):
    r = auth_server.get("/.well-known/jwks.json")
    assert r.status == 200
    assert r.headers["Cache-Control"] == "public, max-age=86400"
    assert_conforms("GET", "/.well-known/jwks.json", r)
    keys = r.json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["crv"] == "P-256" and k["alg"] == "ES256"
                        and k["use"] == "sig" for k in keys)
    assert all("d" not in k for k in keys)  # never the private half


def test_issued_tokens_verify_against_the_jwks(auth_server):
    a = new_tenant(auth_server)
    jwks = jwt.PyJWKSet.from_dict(auth_server.get("/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(a.token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims = jwt.decode(a.token, key.key, algorithms=["ES256"], audience="opencomfy:workspace")
    assert claims["sub"] == a.user_id and claims["ws"] == a.workspace_id
    assert claims["exp"] - claims["iat"] == 3600


def test_token_exchange_shape_and_identity_only(auth_server):
    a = new_tenant(auth_server)
    r = a.post("/api/auth/token", {}, kind="id")
    assert r.status == 200
    assert_conforms("POST", "/api/auth/token", r)
    body = r.json()
    assert body["role"] == "owner" and "workspace:manage" in body["permissions"]
    assert body["workspace"]["id"] == a.workspace_id
    # A workspace token is not an identity token; an API key is not a bearer JWT here.
    assert a.post("/api/auth/token", {}, kind="token").status == 401
    assert a.post("/api/auth/token", {}, kind="key").status == 401
    assert auth_server.post("/api/auth/token", {}).status == 401


def test_alg_none_is_refused(auth_server):
    a = new_tenant(auth_server)
    claims = jwt.decode(a.token, options={"verify_signature": False})
    forged = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}." \
             f"{_b64(json.dumps(claims).encode())}."
    assert _status(auth_server, forged) == 401


def test_hmac_signed_with_our_public_key_is_refused(auth_server):
    a = new_tenant(auth_server)
    claims = jwt.decode(a.token, options={"verify_signature": False})
    jwk = auth_server.get("/.well-known/jwks.json").json()["keys"][0]
    public = jwt.PyJWK(jwk).key
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, json.dumps(jwk).encode()):
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}).encode())
        body = _b64(json.dumps(claims).encode())
        sig = _b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        assert _status(auth_server, f"{header}.{body}.{sig}") == 401


def test_tampered_signature_and_foreign_key_are_refused(auth_server):
    a = new_tenant(auth_server)
    head, body, sig = a.token.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    assert _status(auth_server, f"{head}.{body}.{flipped}") == 401
    claims = jwt.decode(a.token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(a.token)["kid"]
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": kid})
    assert _status(auth_server, forged) == 401


@pytest.mark.parametrize("change", ["wrong_issuer", "wrong_audience", "expired", "not_yet_valid",
                                    "no_exp", "unknown_user"])
def test_bad_claims_are_refused_even_when_signed_by_us(auth_server, change):
    a = new_tenant(auth_server)
    kid, key = _server_signing_key(auth_server)
    now = int(time.time())
    claims = {"iss": "opencomfy", "aud": "opencomfy:workspace", "sub": a.user_id,
              "ws": a.workspace_id, "iat": now, "nbf": now, "exp": now + 600}
    good = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
    assert _status(auth_server, good) == 200  # the control: the same key, good claims
    bad = dict(claims)
    if change == "wrong_issuer":
        bad["iss"] = "https://evil.example"
    elif change == "wrong_audience":
        bad["aud"] = "someone-else"
    elif change == "expired":
        bad.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    elif change == "not_yet_valid":
        bad.update(nbf=now + 3600, exp=now + 7200)
    elif change == "no_exp":
        del bad["exp"]
    elif change == "unknown_user":
        bad["sub"] = "u-nobody"
    assert _status(auth_server, jwt.encode(bad, key, algorithm="ES256", headers={"kid": kid})) == 401


def test_identity_token_is_checked_too(auth_server):
    a = new_tenant(auth_server)
    kid, key = _server_signing_key(auth_server)
    now = int(time.time())
    expired = jwt.encode({"iss": "opencomfy", "aud": "opencomfy:identity", "sub": a.user_id,
                          "iat": now - 7200, "exp": now - 3600}, key, algorithm="ES256",
                         headers={"kid": kid})
    assert auth_server.post("/api/auth/token", {},
                            headers={"Authorization": f"Bearer {expired}"}).status == 401


def test_garbage_bearer_tokens_are_401_not_500(auth_server):
    for junk in ("x", "a.b.c", "e30.e30.", "....", "é" * 10, "eyJhbGciOiJFUzI1NiJ9." * 3):
        r = auth_server.get("/api/queue", headers={"Authorization": f"Bearer {junk}"})
        assert r.status == 401, junk
