"""Fast checks of the pieces without a server: route policies, the rate limiter, the keyring."""

from __future__ import annotations

import base64
import time

import pytest

from opencomfy.identity import policy as P
from opencomfy.identity.ratelimit import RateLimiter
from opencomfy.secrets.crypto import Keyring, KeyringError


@pytest.mark.parametrize("method, template, alias, expected", [
    ("GET", "/health", True, P.PUBLIC),
    ("GET", "/system_stats", True, P.PUBLIC),
    ("GET", "/api/system_stats", False, P.PUBLIC),
    ("GET", "/.well-known/jwks.json", False, P.PUBLIC),
    ("DELETE", "/api/auth/session", False, P.PUBLIC),
    ("POST", "/api/auth/session", False, P.KEY_OR_BEARER),
    ("POST", "/api/auth/token", False, P.BEARER_ONLY),
    ("GET", "/api/workspaces/{id}", False, P.BEARER_ONLY),
    ("DELETE", "/workspace/members/{user_id}/api-keys", True, P.BEARER_ONLY),
    ("POST", "/invites/{token}/accept", True, P.BEARER_ONLY),
    ("GET", "/api/features", False, P.OPTIONAL),
    ("GET", "/ws", False, P.WEBSOCKET),
    ("POST", "/prompt", True, P.DEFAULT),
    ("GET", "/view", True, P.DEFAULT),
    ("GET", "/internal/logs", False, P.DEFAULT),
    ("GET", "/my_pack/route", False, P.DEFAULT),  # a custom node's route: not public
    ("HEAD", "/health", True, P.PUBLIC),
])
def test_route_policies(method, template, alias, expected):
    assert P.policy_for(method, template, has_api_alias=alias) == expected


def test_rate_limiter_refills():
    limiter = RateLimiter(per_minute=600, burst=2)  # 10 a second
    assert [limiter.check("k") for _ in range(3)] == [0, 0, 1]
    assert limiter.check("other") == 0
    time.sleep(0.12)
    assert limiter.check("k") == 0
    assert RateLimiter(per_minute=0, burst=1).check("k") == 0  # off


def test_keyring_validation_and_round_trip():
    key = base64.b64encode(b"k" * 32).decode()
    ring = Keyring(f"main:{key}")
    key_id, blob = ring.seal("hello", bound_to="w/1")
    assert key_id == "main" and "hello" not in blob
    assert ring.open(key_id, blob, bound_to="w/1") == "hello"
    with pytest.raises(KeyringError):
        ring.open(key_id, blob, bound_to="w/2")
    for bad in ("", "nocolon", "k:!!!", f"k:{base64.b64encode(b'short').decode()}"):
        with pytest.raises(KeyringError):
            Keyring(bad)


def test_config_refuses_unusable_identity_settings(tmp_path):
    from opencomfy.config import Config, ConfigError

    with pytest.raises(ConfigError, match="OPENCOMFY_SECRETS_KEYS"):
        Config(base_directory=tmp_path, secrets_keys="k:notbase64!").check()
    with pytest.raises(ConfigError, match="go together"):
        Config(base_directory=tmp_path, oidc_issuer="https://id.example").check()
    Config(base_directory=tmp_path, secrets_keys="k:" + base64.b64encode(b"x" * 32).decode()).check()
