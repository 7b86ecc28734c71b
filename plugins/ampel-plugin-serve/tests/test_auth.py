"""Teams and tokens: printed once, kept hashed, refused when invalid, revoked or expired, rate
limited per token; the web view's cookie works like the header. On real SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ampel_core.store import open_store
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_serve.app import ServeSettings, create_app
from ampel_serve.auth import RateLimiter
from ampel_serve.teams import TeamBook, hash_token
from ampel_serve.testing import ampel


@pytest.fixture
def book(store_url: str) -> Iterator[TeamBook]:
    opened = TeamBook(store_url)
    yield opened
    opened.close()


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(store=store_url, data_dir=tmp_path / "data"))) as test_client:
        yield test_client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _everything(store_url: str) -> str:
    """Every value of the serve tables, as text."""
    store = open_store(store_url, read_only=True)
    try:
        return repr([store.execute(f"SELECT * FROM {table}")  # type: ignore[attr-defined]
                     for table in ("serve_teams", "serve_tokens")])
    finally:
        store.close()


def test_team_add_prints_the_token_once_and_keeps_it_hashed(store_url: str) -> None:
    done = ampel("serve", "team", "add", "SN_TEAM", "--rights", "ZTF_PUB,ZTF_PRIV", "--store", store_url)
    token = done.stdout.strip()
    assert len(token) > 40 and "\n" not in token
    assert "printed above, once" in done.stderr
    stored = _everything(store_url)
    assert token not in stored and hash_token(token) in stored
    listing = ampel("serve", "team", "list", "--store", store_url).stdout
    assert "SN_TEAM  rights: ZTF_PRIV,ZTF_PUB" in listing and token.split(".")[0] in listing and token not in listing
    again = ampel("serve", "team", "add", "SN_TEAM", "--rights", "ZTF_PUB", "--store", store_url, check=False)
    assert again.returncode == 2 and again.stderr.startswith("error: team 'SN_TEAM' exists")
    assert "Traceback" not in again.stderr
    bad = ampel("serve", "team", "add", "x y", "--rights", "ZTF_PUB", "--store", store_url, check=False)
    assert bad.returncode == 2 and "invalid team name" in bad.stderr
    assert ampel("serve", "team", "remove", "SN_TEAM", "--store", store_url).returncode == 0
    assert "SN_TEAM" not in ampel("serve", "team", "list", "--store", store_url).stdout


def test_requests_need_a_valid_token(client: TestClient, book: TeamBook) -> None:
    token = book.add_team("A", ["ZTF_PUB"])
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs").headers["www-authenticate"] == "Bearer"
    assert client.get("/jobs", headers=_bearer("nonsense")).status_code == 401
    assert client.get("/jobs", headers=_bearer(token + "x")).status_code == 401
    assert client.get("/jobs", headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert client.get("/jobs", headers=_bearer(token)).status_code == 200
    client.cookies.set("ampel_token", token)  # the web view's login sets this cookie
    assert client.get("/jobs").status_code == 200


def test_expired_and_revoked_tokens_are_refused(client: TestClient, book: TeamBook) -> None:
    book.add_team("A", ["ZTF_PUB"])
    short = book.new_token("A", expires_days=0.5 / 86400)  # half a second
    kept = book.new_token("A")
    assert client.get("/jobs", headers=_bearer(short)).status_code == 200
    time.sleep(0.6)
    answer = client.get("/jobs", headers=_bearer(short))
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    client.app.state.teams.revoke(kept.split(".")[0])  # type: ignore[attr-defined]
    answer = client.get("/jobs", headers=_bearer(kept))
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]


def test_rate_limit_per_token(client: TestClient, book: TeamBook) -> None:
    book.add_team("A", ["ZTF_PUB"])
    slow, other = book.new_token("A", rate_limit=3), book.new_token("A", rate_limit=100)
    assert [client.get("/jobs", headers=_bearer(slow)).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/jobs", headers=_bearer(slow))
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert client.get("/jobs", headers=_bearer(other)).status_code == 200  # limits are per token


def test_cli_errors_are_one_line(store_url: str) -> None:
    done = ampel("serve", "team", "token", "NOBODY", "--store", store_url, check=False)
    assert done.returncode == 2 and done.stderr.strip() == "error: no team 'NOBODY'; see `ampel serve team list`"
    done = ampel("serve", "team", "add", "A", "--rights", "BAD RIGHT", "--store", store_url, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "invalid right" in done.stderr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=60).map(sorted), st.integers(1, 10))
def test_rate_limiter_never_allows_more_than_the_limit_in_a_window(times: list[float], limit: int) -> None:
    limiter = RateLimiter(window=10.0)
    allowed = []
    for t in times:
        wait = limiter.check("token", limit, now=t)
        if wait == 0:
            allowed.append(t)
        else:  # refused: told a wait within the window, after which it is let through
            assert 0 < wait <= 10.0 + 1e-9
            assert sum(1 for a in allowed if a > t + wait - 10.0 + 1e-9) < limit  # one has left the window then
    for start in allowed:
        assert sum(1 for t in allowed if start <= t < start + 10.0) <= limit


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_token_hash_is_stable_and_distinct(token: str) -> None:
    assert hash_token(token) == hash_token(token) and len(hash_token(token)) == 64
    assert hash_token(token) != hash_token(token + "x")
