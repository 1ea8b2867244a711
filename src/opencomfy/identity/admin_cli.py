"""Admin commands: `opencomfy users create` and `opencomfy keys create`.

They open the server's database directly (same --base-directory / --data-dir /
--database-url as `serve`), so the first user and key exist before anyone can sign in."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from opencomfy.config import Config


def _storage_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-directory", type=Path, default=None)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--database-url")


def add_admin_commands(sub) -> None:
    users = sub.add_parser("users", help="manage user accounts")
    users_sub = users.add_subparsers(dest="admin_command", required=True)
    create = users_sub.add_parser("create", help="create a user (and their personal workspace)")
    create.add_argument("--email", required=True)
    create.add_argument("--name")
    create.add_argument("--password", help="omit to be asked; '-' reads it from stdin")
    create.add_argument("--no-password", action="store_true",
                        help="no password (the user signs in through the external issuer)")
    _storage_arguments(create)
    create.set_defaults(admin_command="users-create")

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="admin_command", required=True)
    kc = keys_sub.add_parser("create", help="create an API key (printed once)")
    kc.add_argument("--email", required=True, help="the key's user")
    kc.add_argument("--workspace", help="workspace id (default: the user's personal workspace)")
    kc.add_argument("--name", default="cli")
    _storage_arguments(kc)
    kc.set_defaults(admin_command="keys-create")


def _config(args) -> Config:
    base = args.base_directory or Path(os.environ.get("OPENCOMFY_HOME", Path.cwd()))
    return Config(base_directory=base.resolve(), data_dir=args.data_dir,
                  database_url=args.database_url)


def run_admin_command(args) -> int:
    try:
        return asyncio.run(_run(args))
    except Exception as exc:  # reported, never a traceback
        from opencomfy.identity.errors import IdentityError

        message = exc.message if isinstance(exc, IdentityError) else str(exc)
        print(f"opencomfy: {message}", file=sys.stderr)
        return 1


async def _run(args) -> int:
    from opencomfy.db.database import Database
    from opencomfy.identity import api_keys, users, workspaces

    config = _config(args)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    db = await Database.open(config.db_url)
    try:
        if args.admin_command == "users-create":
            password = None
            if not args.no_password:
                password = args.password
                if password == "-":
                    password = sys.stdin.readline().rstrip("\n")
                elif password is None:
                    password = getpass.getpass("password: ")
                if not password:
                    print("opencomfy: an empty password is not allowed", file=sys.stderr)
                    return 2
            user = await users.create_user(db=db, email=args.email, name=args.name,
                                           password=password)
            workspace = await users.personal_workspace_id(db=db, user_id=user["id"])
            print(f"user {user['id']} <{user['email']}> personal workspace {workspace}")
            return 0
        user = await users.get_user_by_email(db=db, email=args.email)
        if user is None:
            print(f"opencomfy: no user with email {args.email}", file=sys.stderr)
            return 1
        workspace = args.workspace or await users.personal_workspace_id(db=db, user_id=user["id"])
        if workspace is None:
            # Without this the key would be looked up in workspace "None" and fail confusingly.
            print(f"opencomfy: {args.email} has no personal workspace; pass --workspace",
                  file=sys.stderr)
            return 1
        if await workspaces.role_of(db=db, workspace_id=workspace, user_id=user["id"]) is None:
            print(f"opencomfy: {args.email} is not a member of {workspace}", file=sys.stderr)
            return 1
        created = await api_keys.create(db=db, workspace_id=workspace, user_id=user["id"],
                                        name=args.name)
        # The only time the key is shown.
        print(created["key"])
        return 0
    finally:
        await db.close()
