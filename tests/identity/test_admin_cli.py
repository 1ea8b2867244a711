"""Admin CLI edge cases run in-process (the HTTP-level CLI test is in test_api_keys_http.py)."""

from __future__ import annotations

import argparse

from opencomfy.identity import admin_cli, users


def _args(base, command: str, **extra) -> argparse.Namespace:
    return argparse.Namespace(admin_command=command, base_directory=base, data_dir=None,
                              database_url=None, **extra)


def test_key_for_a_user_without_personal_workspace_is_a_clear_error(tmp_path, monkeypatch, capsys):
    created = admin_cli.run_admin_command(_args(tmp_path, "users-create", email="solo@example.com",
                                                name=None, password=None, no_password=True))
    assert created == 0, capsys.readouterr().err

    async def no_workspace(**_):
        return None

    # e.g. the personal workspace was deleted: without --workspace there is nothing to default to.
    monkeypatch.setattr(users, "personal_workspace_id", no_workspace)
    capsys.readouterr()
    code = admin_cli.run_admin_command(_args(tmp_path, "keys-create", email="solo@example.com",
                                             workspace=None, name="cli"))
    err = capsys.readouterr().err
    assert code == 1
    assert "has no personal workspace" in err and "--workspace" in err
