"""Server configuration: one immutable object built from the command line (or by tests)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CacheMode = Literal["classic", "lru", "none"]
AuthMode = Literal["none", "required"]


# Loading a pickled model (.ckpt, .pt) runs arbitrary code: only .safetensors are read unless
# the operator opts in (`--allow-pickle-models`, which sets this variable for the process).
ALLOW_PICKLE_ENV = "OPENCOMFY_ALLOW_PICKLE"


def pickle_models_allowed() -> bool:
    return os.environ.get(ALLOW_PICKLE_ENV, "").lower() in ("1", "true", "yes")


class ConfigError(ValueError):
    """The configuration cannot be used (reported to the user, never a traceback)."""


@dataclass(frozen=True)
class Config:
    base_directory: Path
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = 8188
    output_directory: Path | None = None
    input_directory: Path | None = None
    temp_directory: Path | None = None
    user_directory: Path | None = None
    data_dir: Path | None = None
    database_url: str | None = None
    auth: AuthMode = "none"
    insecure_no_auth: bool = False
    extra_model_paths_config: tuple[Path, ...] = ()
    cpu: bool = False
    cache_mode: CacheMode = "classic"
    cache_lru_size: int = 0
    multi_user: bool = False
    enable_cors_header: str | None = None
    max_upload_size_mb: float = 100.0
    front_end_root: Path | None = None
    verbose: str = "INFO"
    disable_all_custom_nodes: bool = False
    # With disable_all_custom_nodes: the packs that still load (folder or entry-point names).
    whitelist_custom_nodes: tuple[str, ...] = ()
    # ComfyUI-Manager as a pip package (`--enable-manager`): its prestartup, middleware and
    # routes (`--disable-manager-ui` keeps the routes off; the legacy UI on request).
    enable_manager: bool = False
    disable_manager_ui: bool = False
    enable_manager_legacy_ui: bool = False
    disable_metadata: bool = False
    preview_size: int = 512
    # Latent previews while sampling: "none", "auto" (= latent2rgb, as current ComfyUI), "latent2rgb"
    # or "taesd" (ComfyUI's flag).
    preview_method: str = "none"
    # ComfyUI's weight-precision flags given, by argparse name ("fp32_text_enc", "force_fp32",
    # ...): they set the dtypes of the model parts (opencomfy.diffusion.precision).
    precision_flags: tuple[str, ...] = ()
    # Run the in-process worker (embedded mode). Scale-out API replicas turn it off.
    embedded_worker: bool = True
    # Assets: where content bytes live ("local" folder under the state dir, or "s3"); the
    # S3 keys come from the environment (OPENCOMFY_S3_ACCESS_KEY / _SECRET_KEY), never flags.
    blob_store: Literal["local", "s3"] = "local"
    s3_endpoint: str | None = None
    s3_bucket: str = "opencomfy"
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    # The host browsers reach the store at, for signed URLs (default: s3_endpoint).
    s3_public_endpoint: str | None = None
    # Hosts POST /api/assets/download may fetch from (the spec's sources by default).
    asset_download_hosts: tuple[str, ...] = ("huggingface.co", "civitai.com", "civitai.red")
    max_download_size_mb: float = 64 * 1024.0
    # Identity (--auth required): our JWTs' issuer and key rotation; an optional trusted
    # external OpenID issuer (issuer, JWKS URL or file, audience); the per-credential request
    # rate limit (0 = off); the secrets' AES-GCM keys ("id:base64key,..." from the
    # environment, the first seals new secrets); concurrent jobs per workspace (0 = no limit).
    jwt_issuer: str = "opencomfy"
    jwt_rotation_days: float = 30.0
    oidc_issuer: str | None = None
    oidc_jwks: str | None = None
    oidc_audience: str | None = None
    rate_limit_per_minute: int = 6000
    rate_limit_burst: int = 300
    # Failed credential attempts (API key, bearer, password) per client address and minute
    # before that address is answered 429 (0 = off).
    auth_failures_per_minute: int = 30
    secrets_keys: str | None = None
    workspace_concurrency: int = 0
    # Hardening: POST /prompt's body and node caps (413 / 400 above them), and how long a
    # client may take between two chunks of a request body before it is dropped.
    max_prompt_bytes_mb: float = 32.0
    max_prompt_nodes: int = 20000
    body_read_timeout: float = 60.0
    extra: dict = field(default_factory=dict)

    # ComfyUI's folder layout under the base directory, each overridable by its own flag.
    @property
    def output_dir(self) -> Path:
        return (self.output_directory or self.base_directory / "output").resolve()

    @property
    def input_dir(self) -> Path:
        return (self.input_directory or self.base_directory / "input").resolve()

    @property
    def temp_dir(self) -> Path:
        # ComfyUI appends "temp" to --temp-directory.
        root = self.temp_directory if self.temp_directory else self.base_directory
        return (root / "temp").resolve()

    @property
    def user_dir(self) -> Path:
        return (self.user_directory or self.base_directory / "user").resolve()

    @property
    def models_dir(self) -> Path:
        return (self.base_directory / "models").resolve()

    @property
    def custom_nodes_dir(self) -> Path:
        return (self.base_directory / "custom_nodes").resolve()

    @property
    def state_dir(self) -> Path:
        """Where opencomfy keeps its own state (the SQLite database, keys)."""
        return (self.data_dir or self.base_directory).resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.state_dir / 'opencomfy.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_size_mb * 1024 * 1024)

    @property
    def max_prompt_bytes(self) -> int:
        return int(self.max_prompt_bytes_mb * 1024 * 1024)

    def check(self) -> None:
        """Refuse combinations that would be unsafe or cannot work."""
        if self.auth == "none" and not self.insecure_no_auth:
            for host in self.listen:
                if not _is_loopback(host):
                    raise ConfigError(
                        f"refusing to listen on {host} without authentication: "
                        "use --auth required, or --insecure-no-auth if you really mean it"
                    )
        if not 0 < self.port < 65536:
            raise ConfigError(f"invalid port {self.port}")
        if self.blob_store == "s3" and not self.s3_endpoint:
            raise ConfigError("--blob-store s3 needs --s3-endpoint")
        if bool(self.oidc_issuer) != bool(self.oidc_jwks):
            raise ConfigError("--oidc-issuer and --oidc-jwks go together")
        if self.secrets_keys:
            from opencomfy.secrets.crypto import Keyring, KeyringError

            try:
                Keyring(self.secrets_keys)
            except KeyringError as exc:
                raise ConfigError(f"OPENCOMFY_SECRETS_KEYS: {exc}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
