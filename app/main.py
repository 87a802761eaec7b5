"""The web app. `create_app` only assembles: routers, static files, middleware, lifespan."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from threadpoolctl import threadpool_limits

from app import __version__, errors, imaging, store_check
from app.api import (
    attributions,
    channels,
    docs,
    forward,
    health,
    models,
    neurons,
    pages,
    replay,
    runs,
    session_pages,
    sessions,
)
from app.compute_pool import ComputePool
from app.debug import WorkerPidHeader
from app.decode_pool import DecodePool
from app.gate import ForwardGate
from app.http_guard import GuardMiddleware
from app.mapcache import MapCache
from app.models_dir import load_imported
from app.paths import STATIC_DIR
from app.picture_cache import PictureCache
from app.registry import Registry
from app.run_volumes import RunVolumes
from app.runs import RunStore
from app.security import SecurityHeadersMiddleware
from app.sessions import connect
from app.settings import Settings
from app.upload import UploadBudget
from model.training.malloc import limit_arenas

MALLOC_ARENAS = 2


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; without `settings`, they are read from CONVSCOPE_* environment variables.

    `convscope serve --workers N` calls this once in each worker process.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Expensive shared objects are made here, once per process, never at import time.
        app.state.settings = settings
        app.state.registry = Registry.load(settings.models)
        app.state.registry.models.update(load_imported(settings.models_dir, skip=settings.models))
        # With CONVSCOPE_REDIS_URL, runs and sessions live in Redis (app/sessions/connect.py).
        app.state.run_store = (
            connect.open_redis_runs(settings)
            if settings.redis_url
            else RunStore(
                settings.runs_dir,
                max_runs=settings.run_cache_runs,
                max_bytes=settings.run_cache_bytes,
                ttl_seconds=settings.run_ttl_seconds,
            )
        )
        store_check.prepare(app.state.run_store)  # logs what is wrong; /healthz says it
        app.state.run_volumes = RunVolumes(app.state.registry, settings.run_volume_memory_bytes)
        app.state.sessions = await connect.open_sessions(settings)
        app.state.map_cache = MapCache()
        app.state.forward_gate = gate = ForwardGate(
            settings.max_concurrent_forwards, picture_places=settings.max_concurrent_pictures
        )
        app.state.upload_budget = UploadBudget(
            settings.max_concurrent_uploads, settings.upload_buffer_bytes
        )
        app.state.compute_pool = ComputePool(
            gate.threads if settings.compute_processes is None else settings.compute_processes,
            settings.models,
            settings.models_dir,
            runs=None
            if settings.redis_url
            else {
                "dir": str(settings.runs_dir),
                "max_runs": settings.run_cache_runs,
                "max_bytes": settings.run_cache_bytes,
                "ttl_seconds": settings.run_ttl_seconds,
            },
            batch=settings.compute_batch,
        )
        app.state.compute_pool.adopt(app.state.registry, app.state.run_volumes.too_large_for)
        app.state.decode_pool = DecodePool(
            settings.decode_workers or gate.threads,
            settings.decode_seconds,
            settings.decode_memory_bytes,
        )
        app.state.picture_cache = PictureCache(settings.picture_cache_bytes)
        imaging.configure_pillow(settings.max_pixels)
        # Two malloc arenas, not glibc's 16 on two cores: the resident set stays flat over
        # a 10-minute soak instead of creeping (BENCHMARKS.md), at no cost in latency.
        limit_arenas(MALLOC_ARENAS)
        logging.getLogger("app").info("serving %s", ", ".join(settings.models))
        # Runs go in parallel on the gate's threads, one per core; a multi-threaded BLAS
        # inside each would only fight them for the same cores (and for tiny matrices).
        try:
            with threadpool_limits(1, user_api="blas"):
                yield
        finally:
            await app.state.compute_pool.close()
            app.state.forward_gate.close()
            await app.state.sessions.close()
            app.state.decode_pool.close()

    app = FastAPI(
        title="ConvScope",
        version=__version__,
        description="See inside a convolutional network, layer by layer.",
        lifespan=lifespan,
        # Replaced by app/api/docs.py, which needs no CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(
        GuardMiddleware, allowed_hosts=settings.allowed_hosts, limit=settings.limit_concurrency
    )
    if settings.worker_pid_header:
        app.add_middleware(WorkerPidHeader)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(forward.router)
    app.include_router(runs.router)
    app.include_router(attributions.router)
    app.include_router(neurons.router)
    app.include_router(channels.router)
    app.include_router(docs.router)
    app.include_router(pages.router)
    app.include_router(replay.router)
    app.include_router(sessions.router)
    app.include_router(session_pages.router)
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.SWAGGER_UI_DIR), name="docs-assets")
    # check_dir=False: a bare checkout may not have static/ yet; the API still starts.
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
