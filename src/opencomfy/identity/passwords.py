"""Password hashing with argon2id (argon2-cffi's defaults: RFC 9106's second recommendation)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

# Verified against when the email is unknown, so that a wrong email costs as much time as a
# wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("opencomfy-no-such-user")


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)
