"""A trusted external OpenID issuer (issuer + JWKS file + audience from the config)."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://id.example.test"
AUDIENCE = "opencomfy-tests"


@pytest.fixture(scope="module")
def issuer_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def oidc_server(tmp_path_factory, issuer_key):
    from tests.identity.fixtures import start_auth_server

    base = tmp_path_factory.mktemp("oidc")
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer_key.public_key()))
    jwks = base / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1", "alg": "RS256", "use": "sig"}]}))
    srv = start_auth_server(base, "sqlite", "--oidc-issuer", ISSUER, "--oidc-jwks", str(jwks),
                            "--oidc-audience", AUDIENCE)
    yield srv
    srv.stop()


def _id_token(key, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": overrides.pop("sub", uuid.uuid4().hex),
              "email": f"{uuid.uuid4().hex[:8]}@corp.example", "email_verified": True,
              "iat": now, "exp": now + 600, **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-1"})


def test_external_token_signs_in_and_provisions_a_user(oidc_server, issuer_key):
    sub = uuid.uuid4().hex
    token = _id_token(issuer_key, sub=sub, email="alice@corp.example")
    r = oidc_server.get("/api/user", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, r.body
    first = r.json()
    assert first["email"] == "alice@corp.example" and first["role"] == "owner"
    # The same subject is the same user next time.
    again = oidc_server.get("/api/user", headers={"Authorization": f"Bearer {_id_token(issuer_key, sub=sub)}"})
    assert again.json()["id"] == first["id"]
    # It is an identity token: exchange it for our workspace token.
    r = oidc_server.post("/api/auth/token", {}, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200 and r.json()["workspace"]["id"] == first["workspace_id"]
    ours = r.json()["token"]
    assert oidc_server.get("/api/queue", headers={"Authorization": f"Bearer {ours}"}).status == 200


@pytest.mark.parametrize("bad", ["wrong_audience", "wrong_issuer", "expired", "other_key",
                                 "unverified_email", "hs256"])
def test_external_token_attacks(oidc_server, issuer_key, bad):
    if bad == "wrong_audience":
        token = _id_token(issuer_key, aud="someone-else")
    elif bad == "wrong_issuer":
        token = _id_token(issuer_key, iss="https://evil.example")
    elif bad == "expired":
        token = _id_token(issuer_key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    elif bad == "other_key":
        token = _id_token(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif bad == "unverified_email":
        token = _id_token(issuer_key, email_verified=False)
    else:
        now = int(time.time())
        token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now,
                            "exp": now + 60, "email": "m@corp.example"}, "s" * 32,
                           algorithm="HS256", headers={"kid": "idp-1"})
    r = oidc_server.get("/api/user", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401, (bad, r.body)
