"""`Caller`: who is making a request, in which workspace, with which role and credential."""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_USER = "local"
LOCAL_WORKSPACE = "local"


@dataclass(frozen=True)
class Caller:
    user_id: str
    workspace_id: str
    role: str  # "owner" | "member"
    # How the caller proved who they are: "local" (--auth none), "api_key", "session",
    # "token" (our workspace JWT), "identity" (our identity JWT), "oidc" (the external issuer).
    credential: str
    # Which credential exactly (key id, session id, token subject): the rate limit's key.
    credential_id: str = ""
    email: str | None = None

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def workspace_bound(self) -> bool:
        """API keys and workspace tokens name their workspace; the header cannot move them."""
        return self.credential in ("api_key", "token")


LOCAL_CALLER = Caller(user_id=LOCAL_USER, workspace_id=LOCAL_WORKSPACE, role="owner",
                      credential="local", credential_id="local")
