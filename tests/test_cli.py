"""The convscope command: help that lists subcommands, and a real server."""

import shutil
import socket
import ssl
import subprocess
import sys
import time

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


@pytest.mark.parametrize(
    "command", ["serve", "train", "eval", "forward", "explain", "import", "index", "visualize"]
)
def test_help_descriptions_are_wrapped_to_the_terminal(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    # Lines at the margin are prose (the description): wrapped. Indented ones (examples,
    # options) are written to stand alone.
    long = [line for line in out.splitlines() if len(line) > 80 and not line.startswith(" ")]
    assert long == []
    description = build_parser()._subparsers._group_actions[0].choices[command].description
    assert " ".join(description.split()) in " ".join(out.split())


def _serve_args(*extra: str):
    return build_parser().parse_args(["serve", *extra])


def test_serve_passes_the_ssl_files_to_uvicorn(tmp_path, monkeypatch) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_text("k")
    cert.write_text("c")
    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **options: seen.update(options))
    args = _serve_args("--ssl-keyfile", str(key), "--ssl-certfile", str(cert))
    assert serve(args) == 0
    assert (seen["ssl_keyfile"], seen["ssl_certfile"]) == (str(key), str(cert))
    seen.clear()
    assert serve(_serve_args()) == 0
    assert "ssl_keyfile" not in seen and "ssl_certfile" not in seen


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--ssl-keyfile", "KEY"], "both --ssl-keyfile and --ssl-certfile"),
        (["--ssl-keyfile", "KEY", "--ssl-certfile", "missing.pem"], "missing.pem: there is no"),
    ],
)
def test_ssl_options_that_cannot_work_are_a_sentence(
    extra: list[str], words: str, tmp_path, capsys, monkeypatch
) -> None:
    key = tmp_path / "key.pem"
    key.write_text("k")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("uvicorn started"))
    args = _serve_args(*[str(key) if part == "KEY" else part for part in extra])
    assert serve(args) == 2
    assert words in capsys.readouterr().err


@pytest.mark.slow  # a server and openssl
def test_serve_answers_https_with_a_certificate(tmp_path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    command += ["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trusted)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the https server did not answer")
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.url.scheme == "https"
    finally:
        server.terminate()
        server.wait(timeout=10)
