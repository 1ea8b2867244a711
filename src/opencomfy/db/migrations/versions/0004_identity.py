"""identity: users, workspaces, memberships, invites, API keys, sessions, signing keys;
secrets and feedback

Revision ID: 0004_identity
Revises: 0003_assets_tasks
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_identity"
down_revision = "0003_assets_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),  # lower-cased
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("external_issuer", sa.String(512)),
        sa.Column("external_subject", sa.String(255)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    # Serves identity.users.by_external (a trusted OpenID issuer's subject -> our user).
    op.create_index("ix_users_external", "users", ["external_issuer", "external_subject"],
                    unique=True)
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),  # personal | team
        sa.Column("owner_user_id", sa.String(64), nullable=False),  # the creator
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger),  # soft delete
    )
    op.create_table(
        "memberships",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),  # owner | member
        sa.Column("joined_at", sa.BigInteger, nullable=False),
    )
    # Serves identity.workspaces.list_for_user.
    op.create_index("ix_memberships_user", "memberships", ["user_id"])
    op.create_table(
        "invites",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("invited_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("accepted_at", sa.BigInteger),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_index("ix_invites_workspace", "invites", ["workspace_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("last_used_at", sa.BigInteger),
        sa.Column("revoked_at", sa.BigInteger),
    )
    # Serves identity.api_keys.list_keys (a workspace's keys, a member's keys).
    op.create_index("ix_api_keys_workspace_user", "api_keys", ["workspace_id", "user_id"])
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64)),
        sa.Column("key_id", sa.String(64), nullable=False),  # which encryption key sealed it
        sa.Column("ciphertext", sa.Text, nullable=False),  # base64(nonce || AES-GCM output)
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("last_used_at", sa.BigInteger),
    )
    op.create_index("ix_secrets_workspace_name", "secrets", ["workspace_id", "name"], unique=True)
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("content", sa.Text),
        sa.Column("rating", sa.Integer),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("feedback", "secrets", "signing_keys", "auth_sessions", "api_keys", "invites",
                  "memberships", "workspaces", "users"):
        op.drop_table(table)
