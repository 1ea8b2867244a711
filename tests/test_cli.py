"""`opencomfy serve` takes ComfyUI's launch flags and ours, and refuses unsafe combinations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opencomfy.cli import build_parser, config_from_args, main
from opencomfy.config import ConfigError


def parse(*argv: str):
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_defaults_follow_comfyui_layout(tmp_path):
    c = parse("--base-directory", str(tmp_path))
    assert c.listen == ("127.0.0.1",) and c.port == 8188
    assert c.output_dir == tmp_path / "output" and c.input_dir == tmp_path / "input"
    assert c.temp_dir == tmp_path / "temp" and c.user_dir == tmp_path / "user"
    assert c.cache_mode == "classic" and c.auth == "none"
    assert c.db_url == f"sqlite+aiosqlite:///{tmp_path / 'opencomfy.db'}"


def test_bare_listen_means_all_interfaces():
    assert parse("--listen").listen == ("0.0.0.0",)
    assert parse("--listen", "127.0.0.1,::1").listen == ("127.0.0.1", "::1")


def test_directory_flags(tmp_path):
    c = parse("--base-directory", str(tmp_path), "--output-directory", str(tmp_path / "o"),
              "--input-directory", str(tmp_path / "i"), "--temp-directory", str(tmp_path / "t"),
              "--user-directory", str(tmp_path / "u"), "--data-dir", str(tmp_path / "d"))
    assert c.output_dir == tmp_path / "o" and c.input_dir == tmp_path / "i"
    assert c.temp_dir == tmp_path / "t" / "temp"  # ComfyUI appends "temp"
    assert c.user_dir == tmp_path / "u" and c.state_dir == tmp_path / "d"


def test_extra_model_paths_config_is_repeatable(tmp_path):
    c = parse("--extra-model-paths-config", "a.yaml", "b.yaml", "--extra-model-paths-config", "c.yaml")
    assert [p.name for p in c.extra_model_paths_config] == ["a.yaml", "b.yaml", "c.yaml"]


def test_cache_flags():
    assert parse("--cache-lru", "8").cache_mode == "lru" and parse("--cache-lru", "8").cache_lru_size == 8
    assert parse("--cache-lru", "0").cache_mode == "classic"  # as ComfyUI: 0 falls back
    assert parse("--cache-none").cache_mode == "none"
    assert parse("--cache-classic").cache_mode == "classic"
    with pytest.raises(SystemExit):
        parse("--cache-none", "--cache-lru", "3")


def test_other_flags():
    c = parse("--cpu", "--multi-user", "--enable-cors-header", "--max-upload-size", "5",
              "--disable-auto-launch", "--front-end-root", "/srv/fe", "--verbose")
    assert c.cpu and c.multi_user and c.enable_cors_header == "*"
    assert c.max_upload_bytes == 5 * 1024 * 1024 and c.front_end_root == Path("/srv/fe")
    assert c.verbose == "DEBUG"
    assert parse("--enable-cors-header", "https://a.example").enable_cors_header == "https://a.example"


def test_unsupported_comfyui_flags_are_accepted_with_a_warning(caplog):
    c = parse("--highvram", "--preview-method", "auto", "--fast", "fp16_accumulation")
    assert c.port == 8188
    assert any("--highvram" in r.message for r in caplog.records)


def test_no_auth_refused_off_loopback():
    with pytest.raises(ConfigError):
        parse("--listen", "0.0.0.0").check()
    parse("--listen", "0.0.0.0", "--insecure-no-auth").check()
    parse("--listen", "0.0.0.0", "--auth", "required").check()
    parse("--listen", "::1").check()


def test_main_reports_refusal_without_traceback(capsys):
    assert main(["serve", "--listen"]) == 2
    assert "--insecure-no-auth" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "opencomfy", "serve", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--database-url" in r.stdout and "--listen" in r.stdout


def test_an_unusable_keyring_file_stops_the_server_with_a_clear_message(tmp_path):
    """A corrupt secrets keyring in the data dir: exit 2 naming the file, no traceback."""
    from tests.harness import free_port

    data = tmp_path / "data"
    data.mkdir()
    (data / "secrets-keyring").write_text("k1:not-base64\n")
    r = subprocess.run([sys.executable, "-m", "opencomfy", "serve", "--base-directory", str(tmp_path),
                        "--data-dir", str(data), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "secrets-keyring" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
