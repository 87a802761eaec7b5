"""Settings from CONVSCOPE_* variables, and the README table that documents them."""

from pathlib import Path

import pydantic
import pytest

from app.settings import MB, Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"CONVSCOPE_{name.upper()}", raising=False)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_upload_bytes == 10 * MB
    assert settings.run_cache_bytes == 256 * MB
    assert settings.models == ("cifar10", "mnist", "cs231n")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONVSCOPE_PORT", "9000")
    monkeypatch.setenv("CONVSCOPE_MODELS", " mnist , cifar10,")
    monkeypatch.setenv("CONVSCOPE_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("CONVSCOPE_MAX_CONCURRENT_FORWARDS", "2")
    settings = Settings()
    assert settings.port == 9000
    assert settings.models == ("mnist", "cifar10")
    assert settings.runs_dir == tmp_path
    assert settings.max_concurrent_forwards == 2


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "0"), ("PORT", "http"), ("MAX_UPLOAD_BYTES", "-1")]
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"CONVSCOPE_{name}", value)
    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_readme_documents_every_variable() -> None:
    readme = README.read_text()
    for name in Settings.model_fields:
        assert f"| `CONVSCOPE_{name.upper()}` |" in readme
