"""The convscope command: help that lists subcommands, and a real server."""

import subprocess
import sys

import httpx
import pytest

from app import __version__
from app.cli import build_parser, main, serve


def test_help_lists_subcommands_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out and "run the web server" in out
    assert "examples:" in out


def test_serve_help_shows_options_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--workers", "127.0.0.1", "8000"):
        assert option in out
    assert "convscope serve --workers 4" in out


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_serve_is_a_subcommand_with_its_handler() -> None:
    args = build_parser().parse_args(["serve", "--port", "8123", "--workers", "3"])
    assert args.handler is serve and (args.port, args.workers, args.host) == (8123, 3, None)


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_workers_must_be_a_positive_number(workers: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--workers", workers])


@pytest.mark.slow  # a subprocess
def test_bad_setting_is_reported_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env={"CONVSCOPE_PORT": "eighty", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid setting" in result.stdout and "port" in result.stdout
    assert "Traceback" not in result.stderr


def test_python_m_app_serves_healthz(run_server) -> None:
    with run_server([sys.executable, "-m", "app", "serve"]) as base_url:
        response = httpx.get(f"{base_url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


@pytest.mark.slow
def test_serve_with_workers_serves_healthz(run_server) -> None:
    with run_server([sys.executable, "-m", "app", "serve", "--workers", "2"]) as base_url:
        response = httpx.get(f"{base_url}/healthz", timeout=5)
    assert response.status_code == 200
