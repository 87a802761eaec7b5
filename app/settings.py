"""Settings: one object, read from CONVSCOPE_* environment variables.

Routes get it through the `get_settings` dependency (or `SettingsDep`), so tests can build
the app with their own Settings or override the dependency.
"""

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSCOPE_")

    host: str = Field("127.0.0.1", description="Address `convscope serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `convscope serve` listens on.")
    max_upload_bytes: PositiveInt = Field(10 * MB, description="Largest accepted upload.")
    upload_idle_seconds: PositiveFloat = Field(
        30.0, description="An upload sending nothing for this long is refused (408)."
    )
    max_pixels: PositiveInt = Field(
        40_000_000, description="Largest accepted image (width x height), checked before decoding."
    )
    run_cache_runs: PositiveInt = Field(64, description="Runs kept for refetching layers.")
    run_cache_bytes: PositiveInt = Field(
        256 * MB, description="Disk space the kept runs may use (in runs_dir)."
    )
    run_ttl_seconds: PositiveInt = Field(3600, description="How long a run can be fetched again.")
    max_concurrent_forwards: PositiveInt = Field(
        64,
        description="Forward runs taken on at once (each holds its upload and volumes while "
        "it waits for a core); further uploads get 503 with Retry-After.",
    )
    # Under /tmp so that every worker process of one server shares it.
    runs_dir: Path = Field(
        Path(tempfile.gettempdir()) / "convscope-runs", description="Where runs are stored."
    )
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        ("cifar10", "mnist"), description="Model ids to serve, comma-separated."
    )
    worker_pid_header: bool = Field(
        False, description="Diagnostics: name the answering worker process in X-Worker-PID."
    )

    @field_validator("models", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value


async def get_settings(request: Request) -> Settings:
    """The running app's settings (stored on app.state by the lifespan)."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
