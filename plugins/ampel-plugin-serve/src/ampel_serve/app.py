"""The ASGI app of ``ampel serve``: the read API under ``/api`` (`ampel_serve.api`), the web view
at ``/`` (`ampel_serve.web`), job uploads under ``/jobs`` (`ampel_serve.jobs`), OpenAPI at ``/docs``.

``app.state`` holds ``settings`` (`ServeSettings`), ``store`` (a read-only `Store`; each thread of
the request pool has its own connection), ``teams`` (`ampel_serve.teams.TeamBook`),
``rate_limiter`` (`ampel_serve.auth.RateLimiter`), ``jobs`` (`ampel_serve.jobs.JobBook`) and
``service`` (`ampel_serve.service.Service`, or None when this app only serves).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from ampel_core.store import Store, open_store
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServeSettings", "create_app", "get_store"]


class ServeSettings(BaseModel):
    """Everything ``ampel serve`` is told on its command line."""

    model_config = ConfigDict(extra="forbid")

    store: str = Field("sqlite:///ampel.db", description="Store URL (sqlite:///file.db, postgresql://...).")
    data_dir: Path = Field(Path("ampel-data"), description="The server's data directory: the only place paths in "
                                                           "uploaded jobs may point to.")
    watch: Path | None = Field(None, description="Ingest alert files (and tar archives) dropped into this directory.")
    source: str | None = Field(None, description="Ingest from Kafka: kafka://host:port/topic[,topic]?group=ID.")
    alert_format: str = Field("ztf", description="Alert format of the stream (a registered format name).")
    pattern: str = Field("*", description="File names to ingest in the watched directory (fnmatch).")
    settle: float = Field(1.0, ge=0, description="Seconds a dropped file must be unchanged before it is ingested.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    batch_size: int = Field(200, ge=1, description="Alerts per ingest transaction.")
    poll: float = Field(1.0, gt=0, description="Seconds between looks at the watched directory / job changes.")
    t2_workers: int = Field(1, ge=0, description="T2 worker processes (threads with ``threads``; 0: none).")
    threads: bool = Field(False, description="Ingest and run T2 in threads of the API's process instead of "
                                             "processes of their own (one core for everything).")
    t3_interval: float = Field(300.0, gt=0, description="Seconds between runs of the jobs' T3 tasks.")
    max_upload_bytes: int = Field(256 * 1024, ge=1, description="Largest job upload accepted.")
    rate_window: float = Field(60.0, gt=0, description="Seconds of the window of every token's rate limit.")


class _ThreadStores:
    """A read-only store per thread, opened on first use: the request pool's threads never share a
    connection (a SQLite connection must not be used by two threads at once)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._opened: list[Store] = []
        self._lock = threading.Lock()

    def get(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = open_store(self.url, read_only=True)
            with self._lock:
                self._opened.append(store)
        return store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def close_all(self) -> None:
        with self._lock:
            for store in self._opened:
                store.close()
            self._opened.clear()
        self._local = threading.local()


def get_store(request: Request) -> Store:
    """FastAPI dependency: the read-only store of this request's thread."""
    stores: _ThreadStores = request.app.state.stores
    return stores.get()


def _router(module: str) -> APIRouter:
    """``module``'s ``router``; an empty router while that module is not installed."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        return APIRouter()
    return cast(APIRouter, found.router)


def create_app(settings: ServeSettings, service: bool = False) -> FastAPI:
    """The app for ``settings``. With ``service``, the app's lifespan also runs the ingestion, T2
    workers and T3 schedules (`ampel_serve.service.Service`): started with the app, stopped (in-flight
    work finished) when it shuts down."""
    from ampel_serve.auth import RateLimiter
    from ampel_serve.jobs import JobBook
    from ampel_serve.jobs import router as jobs_router
    from ampel_serve.teams import TeamBook

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    teams = TeamBook(settings.store)  # opens the store writable first: creates its schema and ours
    jobs = JobBook(settings.store, settings.data_dir, teams)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.service is not None:
            app.state.service.start()
        try:
            yield
        finally:
            if app.state.service is not None:
                app.state.service.stop()
            app.state.stores.close_all()
            jobs.close()
            teams.close()

    app = FastAPI(title="AMPEL live instance", lifespan=lifespan, docs_url="/docs", openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.stores = _ThreadStores(settings.store)
    app.state.store = app.state.stores  # reads through it use the calling thread's connection
    app.state.teams = teams
    app.state.jobs = jobs
    app.state.rate_limiter = RateLimiter(settings.rate_window)
    app.state.service = None
    if service:
        from ampel_serve.service import Service

        app.state.service = Service(settings, jobs)
    app.include_router(jobs_router, prefix="/jobs", tags=["jobs"])
    app.include_router(_router("ampel_serve.api"), prefix="/api")
    app.include_router(_router("ampel_serve.web"))
    return app
