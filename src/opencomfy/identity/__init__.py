"""Accounts, workspaces and credentials: who is calling, and in which workspace.

`IdentityService` (service.py) is the one entry point the HTTP layer uses; the modules beside
it hold one concept each (users, workspaces, invites, api_keys, sessions, tokens)."""
