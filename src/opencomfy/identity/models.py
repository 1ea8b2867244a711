"""Identity tables (created by migration 0004_identity; mirrored here for queries).

Times are Unix milliseconds. Credentials (API keys, session tokens, invite tokens) are stored
only as SHA-256 hashes: they carry 256 random bits, so a fast hash cannot be brute-forced,
and a lookup by hash stays one index probe per request.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Integer, String, Table, Text

from opencomfy.db.models import Base

metadata = Base.metadata

users = Table(
    "users", metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("password_hash", String(255)),
    Column("status", String(16), nullable=False),
    Column("external_issuer", String(512)),
    Column("external_subject", String(255)),
    Column("created_at", BigInteger, nullable=False),
)

workspaces = Table(
    "workspaces", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("type", String(16), nullable=False),
    Column("owner_user_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),
)

memberships = Table(
    "memberships", metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("joined_at", BigInteger, nullable=False),
)

invites = Table(
    "invites", metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("email", String(320), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("invited_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("accepted_at", BigInteger),
    Column("revoked_at", BigInteger),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("key_prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
)

auth_sessions = Table(
    "auth_sessions", metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

secrets = Table(
    "secrets", metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("provider", String(64)),
    Column("key_id", String(64), nullable=False),
    Column("ciphertext", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger),
)

feedback = Table(
    "feedback", metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("content", Text),
    Column("rating", Integer),
    Column("metadata", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
