"""Settings: one object, read from CONVSCOPE_* environment variables.

Routes get it through the `get_settings` dependency (or `SettingsDep`), so tests can build
the app with their own Settings or override the dependency.
"""

import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MB = 1024 * 1024


def _default_models_dir() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "convscope" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSCOPE_")

    host: str = Field("127.0.0.1", description="Address `convscope serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `convscope serve` listens on.")
    max_upload_bytes: PositiveInt = Field(10 * MB, description="Largest accepted upload.")
    upload_idle_seconds: PositiveFloat = Field(
        10.0, description="An upload sending nothing for this long is refused (408)."
    )
    max_pixels: PositiveInt = Field(
        16_800_000, description="Largest accepted image (width x height), checked before decoding."
    )
    run_cache_runs: PositiveInt = Field(
        4096,
        description="Runs kept for refetching layers (a run is its record and input: a few "
        "KB for cifar10; its volumes are recomputed when asked for).",
    )
    run_cache_bytes: PositiveInt = Field(
        256 * MB, description="Disk space the kept runs may use (in runs_dir)."
    )
    run_volume_memory_bytes: PositiveInt = Field(
        64 * MB,
        description="Memory per worker for the newest runs' volumes, so that their layers are "
        "served without recomputing them.",
    )
    run_ttl_seconds: PositiveInt = Field(3600, description="How long a run can be fetched again.")
    max_concurrent_forwards: PositiveInt = Field(
        64,
        description="Forward runs taken on at once (each holds its upload and volumes while "
        "it waits for a core); further uploads get 503 with Retry-After.",
    )
    # Under /tmp so that every worker process of one server shares it; one per user, made
    # 0700 and checked at start (app/store_check.py), so another user cannot plant it.
    runs_dir: Path = Field(
        Path(tempfile.gettempdir()) / f"convscope-runs-{os.getuid()}",
        description="Where runs are stored.",
    )
    models_dir: Path = Field(
        default_factory=_default_models_dir,
        description="Where `convscope import` writes models; all of them are served.",
    )
    channels_dir: Path | None = Field(
        None,
        description="Folder holding each model's <id>.channels/ (top dataset patches, "
        "precomputed visualisations); default: beside the shipped weights.",
    )
    channel_cache_dir: Path = Field(
        Path(tempfile.gettempdir()) / "convscope-channels",
        description="Where feature visualisations made on request are kept.",
    )
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        ("cifar10", "mnist", "cs231n"), description="Model ids to serve, comma-separated."
    )

    # Classroom sessions (app/sessions): bounds, and Redis for several workers or machines.
    redis_url: str | None = Field(
        None,
        description="Redis for sessions and runs, e.g. redis://127.0.0.1:6379/0; "
        "unset: both live in this process (one worker).",
    )
    session_idle_seconds: PositiveInt = Field(
        7200, description="A session nobody presents to or sends to for this long expires."
    )
    max_sessions: PositiveInt = Field(100, description="Class sessions held at once.")
    max_followers: PositiveInt = Field(500, description="Followers of one session at once.")
    max_submissions: PositiveInt = Field(
        200, description="Images kept on one session's wall (the oldest go first)."
    )
    session_keepalive_seconds: PositiveFloat = Field(
        15, description="A comment is sent to each follower this often, so proxies keep it open."
    )

    # Hostile work (issue 13): every upload, picture and connection bounded in time and memory.
    upload_seconds: PositiveFloat = Field(
        60.0, description="An upload must arrive whole within this many seconds (408)."
    )
    upload_min_bytes_per_second: PositiveInt = Field(
        1024, description="After 5 s, an upload arriving slower than this is refused (408)."
    )
    max_concurrent_uploads: PositiveInt = Field(
        256, description="Uploads received at once, before a forward place is taken (503)."
    )
    upload_buffer_bytes: PositiveInt = Field(
        256 * MB, description="Bytes all uploads being received may hold together (503)."
    )
    max_aspect_ratio: float = Field(
        32.0, ge=1.0, description="Longest side / shortest side of an accepted image (422)."
    )
    decode_seconds: PositiveFloat = Field(
        4.0, description="A decode taking longer is stopped, its worker killed (422)."
    )
    decode_memory_bytes: PositiveInt = Field(
        512 * MB, description="Memory one decoding worker may take beyond its start (413)."
    )
    compute_processes: int | None = Field(
        None,
        ge=0,
        description="Processes that compute forward runs beside this one (one per core by "
        "default); 0 computes them on this process's own threads.",
    )
    compute_batch: PositiveInt = Field(
        8,
        description="Runs a compute process takes into one forward at most, of those waiting "
        "for it when it comes free (1: one at a time).",
    )
    decode_workers: int = Field(
        0, ge=0, description="Decoding worker processes; 0 means one per core."
    )
    max_concurrent_pictures: PositiveInt = Field(
        4, description="Pictures (PNGs, exact JSON) computed at once; more get 503."
    )
    picture_cache_bytes: int = Field(
        32 * MB, ge=0, description="Memory for pictures kept to be served again (per worker)."
    )
    limit_concurrency: PositiveInt = Field(
        1024, description="Requests handled at once by a worker; more get 503 + Retry-After."
    )
    timeout_keep_alive: PositiveInt = Field(
        20, description="Seconds an idle keep-alive connection is kept open."
    )
    header_seconds: PositiveFloat = Field(
        20.0, description="A request's line and headers must arrive within this many seconds (408)."
    )
    max_header_bytes: PositiveInt = Field(
        16 * 1024, description="Largest request line plus headers; larger ones get 431 (h11: 400)."
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        ("*",),
        description="Host header values served, comma-separated (*.example.org allowed); "
        "others get 400. Set it when serving on a network, against DNS rebinding.",
    )
    worker_pid_header: bool = Field(
        False, description="Diagnostics: name the answering worker process in X-Worker-PID."
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return cls._split_commas(value)

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
