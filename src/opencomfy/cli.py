"""Command line: `opencomfy serve` takes ComfyUI's own launch flags plus ours."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from opencomfy.config import ALLOW_PICKLE_ENV, Config, ConfigError

log = logging.getLogger("opencomfy")

# ComfyUI flags we accept so existing launch scripts keep working, but that change nothing here.
# Name -> how many values it takes ("?" optional, 0 none, 1 one, "*" several).
_IGNORED_FLAGS: dict[str, int | str] = {
    "--tls-keyfile": 1, "--tls-certfile": 1, "--auto-launch": 0,
    "--front-end-version": 1, "--enable-compress-response-body": 0, "--gpu-only": 0,
    "--highvram": 0, "--normalvram": 0, "--lowvram": 0, "--novram": 0, "--reserve-vram": 1,
    "--disable-smart-memory": 0, "--cuda-device": 1, "--default-device": 1, "--directml": "?",
    "--force-fp16": 0, "--force-fp32": 0, "--fp32-unet": 0, "--fp64-unet": 0, "--bf16-unet": 0,
    "--fp16-unet": 0, "--fp8_e4m3fn-unet": 0, "--fp8_e5m2-unet": 0, "--fp8_e8m0fnu-unet": 0,
    "--fp16-vae": 0, "--fp32-vae": 0, "--bf16-vae": 0, "--cpu-vae": 0, "--fp8_e4m3fn-text-enc": 0,
    "--fp8_e5m2-text-enc": 0, "--fp16-text-enc": 0, "--fp32-text-enc": 0, "--bf16-text-enc": 0,
    "--use-pytorch-cross-attention": 0, "--use-sage-attention": 0, "--use-flash-attention": 0,
    "--use-split-cross-attention": 0, "--use-quad-cross-attention": 0, "--disable-xformers": 0,
    "--force-upcast-attention": 0, "--dont-upcast-attention": 0, "--fast": "*",
    "--deterministic": 0, "--async-offload": "?", "--disable-mmap": 0, "--mmap-torch-files": 0,
    "--windows-standalone-build": 0, "--default-hashing-function": 1,
    "--disable-api-nodes": 0, "--log-stdout": 0,
    "--dont-print-server": 0, "--quick-test-for-ci": 0, "--cache-ram": "*", "--high-ram": 0,
    "--oneapi-device-selector": 1, "--disable-ipex-optimize": 0, "--supports-fp8-compute": 0,
    "--dont-upcast-attention-vae": 0, "--comfy-api-base": 1, "--database-echo": 0,
    "--disable-assets": 0, "--enable-asset-hashing": 0, "--offline": 0,
    "--feature-flag": 1,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencomfy", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the server (ComfyUI's launch flags are accepted)")
    add_serve_arguments(serve)
    from opencomfy.identity.admin_cli import add_admin_commands

    add_admin_commands(sub)  # `users create`, `keys create`
    return parser


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1",
                   help="address(es) to listen on, comma separated; bare --listen means 0.0.0.0")
    p.add_argument("--port", type=int, default=8188)
    p.add_argument("--base-directory", type=Path, default=None)
    p.add_argument("--output-directory", type=Path)
    p.add_argument("--input-directory", type=Path)
    p.add_argument("--temp-directory", type=Path)
    p.add_argument("--user-directory", type=Path)
    p.add_argument("--extra-model-paths-config", type=Path, action="append", nargs="+", default=[])
    p.add_argument("--cpu", action="store_true")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-classic", action="store_true")
    cache.add_argument("--cache-lru", type=int, default=0, metavar="N")
    cache.add_argument("--cache-none", action="store_true")
    p.add_argument("--multi-user", action="store_true")
    p.add_argument("--enable-cors-header", nargs="?", const="*", default=None)
    p.add_argument("--max-upload-size", type=float, default=100.0, help="MB")
    p.add_argument("--disable-auto-launch", action="store_true")
    p.add_argument("--front-end-root", type=Path)
    p.add_argument("--verbose", nargs="?", const="DEBUG", default="INFO")
    p.add_argument("--disable-all-custom-nodes", action="store_true")
    p.add_argument("--whitelist-custom-nodes", nargs="+", default=[], metavar="NAME",
                   help="with --disable-all-custom-nodes, the packs that still load")
    p.add_argument("--enable-manager", action="store_true",
                   help="load the pip-installed ComfyUI-Manager (comfyui-manager)")
    p.add_argument("--disable-manager-ui", action="store_true")
    p.add_argument("--enable-manager-legacy-ui", action="store_true")
    p.add_argument("--disable-metadata", action="store_true")
    p.add_argument("--preview-size", type=int, default=512)
    p.add_argument("--preview-method", choices=["none", "auto", "latent2rgb", "taesd"], default="none",
                   help="latent previews while sampling (a prompt's extra_data.preview_method overrides)")
    # Ours.
    p.add_argument("--data-dir", type=Path, help="where opencomfy keeps its database and keys")
    p.add_argument("--database-url", help="SQLAlchemy URL; default a SQLite file in --data-dir")
    p.add_argument("--auth", choices=["none", "required"], default="none")
    p.add_argument("--allow-pickle-models", action="store_true",
                   help="also load pickled .ckpt/.pt models (they can run arbitrary code)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow --auth none on a non-loopback address")
    p.add_argument("--blob-store", choices=["local", "s3"], default="local",
                   help="where asset content lives; s3 keys come from OPENCOMFY_S3_ACCESS_KEY/_SECRET_KEY")
    p.add_argument("--s3-endpoint", default=os.environ.get("OPENCOMFY_S3_ENDPOINT"))
    p.add_argument("--s3-bucket", default=os.environ.get("OPENCOMFY_S3_BUCKET", "opencomfy"))
    p.add_argument("--s3-region", default=os.environ.get("OPENCOMFY_S3_REGION", "us-east-1"))
    p.add_argument("--s3-prefix", default="", help="key prefix inside the bucket")
    p.add_argument("--s3-public-endpoint", default=os.environ.get("OPENCOMFY_S3_PUBLIC_ENDPOINT"),
                   help="the store's URL as browsers see it, for signed URLs (default --s3-endpoint)")
    p.add_argument("--asset-download-host", action="append", default=None, metavar="HOST",
                   help="a host POST /api/assets/download may fetch from (repeatable; "
                        "default huggingface.co, civitai.com, civitai.red)")
    p.add_argument("--max-download-size", type=float, default=64 * 1024.0, help="MB")
    p.add_argument("--jwt-issuer", default=os.environ.get("OPENCOMFY_JWT_ISSUER", "opencomfy"),
                   help="the iss of the JWTs we sign")
    p.add_argument("--jwt-rotation-days", type=float, default=30.0)
    p.add_argument("--oidc-issuer", default=os.environ.get("OPENCOMFY_OIDC_ISSUER"),
                   help="a trusted external OpenID issuer whose ID tokens are accepted")
    p.add_argument("--oidc-jwks", default=os.environ.get("OPENCOMFY_OIDC_JWKS"),
                   help="that issuer's JWKS: a URL or a file")
    p.add_argument("--oidc-audience", default=os.environ.get("OPENCOMFY_OIDC_AUDIENCE"))
    p.add_argument("--rate-limit", type=int, default=6000, metavar="PER_MINUTE",
                   help="requests per minute per credential with --auth required (0: off)")
    p.add_argument("--rate-limit-burst", type=int, default=300)
    p.add_argument("--auth-failure-limit", type=int, default=30, metavar="PER_MINUTE",
                   help="failed credential attempts per client address and minute before 429 (0: off)")
    p.add_argument("--workspace-concurrency", type=int, default=0,
                   help="at most this many running jobs per workspace (0: no limit)")
    p.add_argument("--max-prompt-bytes", type=float, default=32.0, metavar="MB",
                   help="largest POST /prompt body (413 above it)")
    p.add_argument("--max-prompt-nodes", type=int, default=20000,
                   help="most nodes in one prompt (400 above it)")
    p.add_argument("--body-read-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="drop a client that sends nothing of its request body for this long")
    for flag, nargs in _IGNORED_FLAGS.items():
        if nargs == 0:
            p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
        else:
            p.add_argument(flag, nargs=nargs, help=argparse.SUPPRESS)


# ComfyUI's weight-precision flags (accepted as above) that do take effect: the diffusion
# models' dtypes (opencomfy.diffusion.precision).
_PRECISION_FLAGS = ("--force-fp32", "--force-fp16", "--fp32-unet", "--fp64-unet", "--bf16-unet",
                    "--fp16-unet", "--fp8_e4m3fn-unet", "--fp8_e5m2-unet", "--fp8_e8m0fnu-unet",
                    "--fp16-vae", "--fp32-vae", "--bf16-vae", "--fp8_e4m3fn-text-enc",
                    "--fp8_e5m2-text-enc", "--fp16-text-enc", "--fp32-text-enc", "--bf16-text-enc")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def config_from_args(args: argparse.Namespace) -> Config:
    for flag in _IGNORED_FLAGS:
        value = getattr(args, _dest(flag), None)
        if value not in (None, False) and flag not in _PRECISION_FLAGS:
            log.warning("%s is a ComfyUI flag that opencomfy accepts but ignores", flag)
    base = args.base_directory or Path(os.environ.get("OPENCOMFY_HOME", Path.cwd()))
    cache_mode = "none" if args.cache_none else "lru" if args.cache_lru > 0 else "classic"
    listen = tuple(h.strip() for h in args.listen.split(",") if h.strip())
    return Config(
        base_directory=base.resolve(),
        listen=listen,
        port=args.port,
        output_directory=args.output_directory,
        input_directory=args.input_directory,
        temp_directory=args.temp_directory,
        user_directory=args.user_directory,
        data_dir=args.data_dir,
        database_url=args.database_url,
        auth=args.auth,
        insecure_no_auth=args.insecure_no_auth,
        extra_model_paths_config=tuple(p for group in args.extra_model_paths_config for p in group),
        cpu=args.cpu,
        cache_mode=cache_mode,
        cache_lru_size=args.cache_lru,
        multi_user=args.multi_user,
        enable_cors_header=args.enable_cors_header,
        max_upload_size_mb=args.max_upload_size,
        front_end_root=args.front_end_root,
        verbose=args.verbose.upper(),
        disable_all_custom_nodes=args.disable_all_custom_nodes,
        whitelist_custom_nodes=tuple(args.whitelist_custom_nodes),
        enable_manager=args.enable_manager,
        disable_manager_ui=args.disable_manager_ui,
        enable_manager_legacy_ui=args.enable_manager_legacy_ui,
        disable_metadata=args.disable_metadata,
        preview_size=args.preview_size,
        preview_method=args.preview_method,
        precision_flags=tuple(_dest(f) for f in _PRECISION_FLAGS if getattr(args, _dest(f), False)),
        blob_store=args.blob_store,
        s3_endpoint=args.s3_endpoint,
        s3_bucket=args.s3_bucket,
        s3_region=args.s3_region,
        s3_prefix=args.s3_prefix,
        s3_public_endpoint=args.s3_public_endpoint,
        asset_download_hosts=tuple(args.asset_download_host or Config.asset_download_hosts),
        max_download_size_mb=args.max_download_size,
        jwt_issuer=args.jwt_issuer,
        jwt_rotation_days=args.jwt_rotation_days,
        oidc_issuer=args.oidc_issuer,
        oidc_jwks=args.oidc_jwks,
        oidc_audience=args.oidc_audience,
        rate_limit_per_minute=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst,
        auth_failures_per_minute=args.auth_failure_limit,
        secrets_keys=os.environ.get("OPENCOMFY_SECRETS_KEYS"),
        workspace_concurrency=args.workspace_concurrency,
        max_prompt_bytes_mb=args.max_prompt_bytes,
        max_prompt_nodes=args.max_prompt_nodes,
        body_read_timeout=args.body_read_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "admin_command", None) is not None:
        from opencomfy.identity.admin_cli import run_admin_command

        return run_admin_command(args)
    if args.command != "serve":
        parser.print_help()
        return 2
    logging.basicConfig(
        level=getattr(logging, args.verbose.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from opencomfy.logs import install_log_capture

    # Before anything else logs or prints: the frontend's log panel shows start-up too.
    install_log_capture(capture_streams=True)
    try:
        config = config_from_args(args)
        config.check()
    except ConfigError as exc:
        print(f"opencomfy: {exc}", file=sys.stderr)
        return 2
    if args.allow_pickle_models:
        os.environ[ALLOW_PICKLE_ENV] = "1"  # read where models load, in the worker
    from opencomfy.server import serve

    return serve(config)
