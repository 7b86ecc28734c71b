"""The read API on a real store (see conftest.py): what each endpoint answers, in each format, and
that no team reads another team's stocks, results, channels or private datapoints."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ampel_core.store import open_store
from ampel_serve.app import ServeSettings, create_app

RHU = "ZTF21abiuvdk"


@pytest.fixture(scope="module")
def client(read_store: Any) -> Iterator[TestClient]:
    app = create_app(ServeSettings(store=read_store.url, data_dir=read_store.data_dir))
    with TestClient(app) as test_client:
        yield test_client


def get(client: TestClient, read_store: Any, team: str, path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers={"Authorization": f"Bearer {read_store.tokens[team]}"})


PRIVATE = "ZTF18abxhyqv"  # the one object whose alerts are ZTF_PRIV (programid 2): only BETA_ALL took it


def test_private_datapoints_only_with_the_right(client: TestClient, read_store: Any) -> None:
    beta = get(client, read_store, "beta", f"/api/stocks/{PRIVATE}").json()
    assert beta["datapoints"] and all("ZTF_PRIV" in dp["tags"] for dp in beta["datapoints"])
    assert "ZTF_PRIV" in get(client, read_store, "beta", f"/api/stocks/{PRIVATE}/lightcurve", format="csv").text
    for path in (f"/api/stocks/{PRIVATE}", f"/api/stocks/{PRIVATE}/lightcurve"):
        assert get(client, read_store, "alpha", path).status_code == 404
    found = get(client, read_store, "alpha", "/api/cone", ra=beta["ra"], dec=beta["dec"], radius=0.01).json()
    assert found["items"] == []
    assert PRIVATE not in get(client, read_store, "alpha", "/api/stocks", limit=1000).text


def test_a_channel_shows_only_the_datapoints_of_the_teams_rights(read_store: Any) -> None:
    """A team whose rights narrowed after its channel ingested (ZTF_PRIV withdrawn) no longer sees
    those datapoints, in the stock, its states or its light curve."""
    from ampel_serve.api import light_curve_rows, stock_document, team_view
    from ampel_serve.auth import Team

    narrowed = Team("beta", frozenset({"ZTF_PUB"}), frozenset({"BETA_ALL"}))
    store = open_store(read_store.url, read_only=True)
    try:
        view = team_view(store, narrowed, frozenset(), PRIVATE)
        document = stock_document(store, view)
    finally:
        store.close()
    assert document["names"] == [PRIVATE] and document["states"]
    assert document["datapoints"] == [] and all(state["datapoints"] == [] for state in document["states"])
    assert light_curve_rows(view) == []


def test_other_teams_stocks_results_and_channels_are_invisible(client: TestClient, read_store: Any) -> None:
    for path in (f"/api/stocks/{RHU}", f"/api/stocks/{RHU}/lightcurve", f"/api/stocks/{RHU}/results"):
        answer = get(client, read_store, "gamma", path)
        assert answer.status_code == 404 and "your channels" in answer.json()["detail"]
    assert get(client, read_store, "gamma", "/api/stocks/ZTF00nothere").status_code == 404  # same answer: no probing
    assert get(client, read_store, "gamma", "/api/channels").json() == []
    assert get(client, read_store, "gamma", "/api/stocks").json()["items"] == []
    assert get(client, read_store, "gamma", "/api/cone", ra=0.9, dec=16.1, radius=5).json()["items"] == []
    assert get(client, read_store, "alpha", "/api/stocks", channel="BETA_ALL").status_code == 404
    beta_results = get(client, read_store, "beta", f"/api/stocks/{RHU}").json()["results"]
    alpha_results = get(client, read_store, "alpha", f"/api/stocks/{RHU}").json()["results"]
    for result in beta_results:
        for path in (f"/api/results/{result['id']}", f"/api/results/{result['id']}/provenance"):
            assert get(client, read_store, "alpha", path).status_code == 404
            assert get(client, read_store, "beta", path).status_code == 200
    for result in alpha_results[:3]:
        assert get(client, read_store, "beta", f"/api/results/{result['id']}").status_code == 404
    assert {r["channel"] for r in get(client, read_store, "alpha", "/api/channels").json()} == {"ALPHA_ALL"}


@pytest.mark.parametrize("path", ["/api/channels", f"/api/stocks/{RHU}", f"/api/stocks/{RHU}/lightcurve",
                                  f"/api/stocks/{RHU}/results", "/api/stocks", "/api/cone?ra=1&dec=16&radius=1",
                                  "/api/results/1", "/api/results/1/provenance"])
def test_every_endpoint_refuses_missing_invalid_expired_and_revoked_tokens(client: TestClient, read_store: Any,
                                                                          refused_tokens: dict[str, str], path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer abc.def"}).status_code == 401
    assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401
    client.cookies.set("ampel_token", "nope")
    try:
        assert client.get(path).status_code == 401
    finally:
        client.cookies.clear()
    for why, token in refused_tokens.items():
        answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and why in answer.json()["detail"], (why, answer.text)


@pytest.fixture(scope="module")
def refused_tokens(read_store: Any) -> dict[str, str]:
    """Tokens of team beta that have expired or were revoked."""
    import time

    from ampel_serve.teams import TeamBook

    teams = TeamBook(read_store.url)
    expired = teams.new_token("beta", expires_days=0.5 / 86400)  # half a second
    revoked = teams.new_token("beta")
    teams.revoke(revoked.partition(".")[0])
    teams.close()
    time.sleep(0.6)
    return {"expired": expired, "revoked": revoked}


def test_light_curve_in_every_format(client: TestClient, read_store: Any) -> None:
    from astropy.io.votable import parse_single_table
    from astropy.table import Table

    as_json = get(client, read_store, "alpha", f"/api/stocks/{RHU}/lightcurve").json()
    rows = as_json["items"]
    assert as_json["columns"][:3] == ["id", "time", "band"]
    assert rows == sorted(rows, key=lambda r: (r["time"], r["id"]))
    assert any(r["upper_limit"] for r in rows) and any(r["flux"] and r["flux"] > 0 for r in rows)
    as_csv = list(csv.DictReader(io.StringIO(get(client, read_store, "alpha", f"/api/stocks/{RHU}/lightcurve",
                                                   format="csv").text)))
    assert [int(r["id"]) for r in as_csv] == [r["id"] for r in rows]
    parquet = get(client, read_store, "alpha", f"/api/stocks/{RHU}/lightcurve", format="parquet")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = Table.read(io.BytesIO(parquet.content), format="parquet")
    assert list(table["id"]) == [r["id"] for r in rows]
    votable = get(client, read_store, "alpha", f"/api/stocks/{RHU}/lightcurve", format="votable")
    table = parse_single_table(io.BytesIO(votable.content)).to_table()
    assert list(table["band"]) == [r["band"] for r in rows]
    assert bool(table["flux"].mask[[r["upper_limit"] for r in rows].index(True)])  # an upper limit has no flux
    detections = get(client, read_store, "alpha", f"/api/stocks/{RHU}/lightcurve", upper_limits="false").json()
    assert detections["items"] and not any(r["upper_limit"] for r in detections["items"])


def test_cone_search(client: TestClient, read_store: Any) -> None:
    near = get(client, read_store, "alpha", "/api/cone", ra=0.8, dec=16.1, radius=0.5).json()
    assert [row["name"] for row in near["items"]] == [RHU]
    everything = get(client, read_store, "alpha", "/api/cone", ra=0.8, dec=16.1, radius=5, limit=1000).json()
    distances = [row["distance"] for row in everything["items"]]
    assert distances == sorted(distances) and all(d <= 5 for d in distances)
    assert get(client, read_store, "alpha", "/api/cone", ra=0, dec=0, radius=5.01).status_code == 422
    assert get(client, read_store, "alpha", "/api/cone", ra=0, dec=91, radius=1).status_code == 422
    assert get(client, read_store, "alpha", "/api/cone", ra="nan", dec=0, radius=1).status_code in (400, 422)


def test_latest_stocks_paging(client: TestClient, read_store: Any) -> None:
    whole = get(client, read_store, "alpha", "/api/stocks", limit=1000).json()
    store = open_store(read_store.url, read_only=True)
    expected = set(store.select_stocks("ALPHA_ALL"))
    store.close()
    assert {row["stock"] for row in whole["items"]} == expected and whole["next_offset"] is None
    assert len(expected) > 20
    updated = [row["updated"] for row in whole["items"]]
    assert updated == sorted(updated, reverse=True)
    pages, offset = [], 0
    while offset is not None:
        page = get(client, read_store, "alpha", "/api/stocks", limit=10, offset=offset)
        pages += page.json()["items"]
        offset = page.json()["next_offset"]
        assert page.headers.get("x-next-offset") == (str(offset) if offset is not None else None)
    assert [row["stock"] for row in pages] == [row["stock"] for row in whole["items"]]
    as_csv = get(client, read_store, "alpha", "/api/stocks", limit=10, format="csv")
    assert as_csv.headers["x-next-offset"] == "10" and len(as_csv.text.splitlines()) == 11
    assert get(client, read_store, "alpha", "/api/stocks", limit=1001).status_code == 422


def test_latest_by_t2_value(client: TestClient, read_store: Any) -> None:
    store = open_store(read_store.url, read_only=True)
    expected = {}
    for stock in store.select_stocks("ALPHA_ALL"):
        latest_state = store.channel_states(stock, "ALPHA_ALL")[-1][1]
        (summary,) = [r for _, r in store.results(stock=stock, unit="T2LightCurveSummary") if r.link == latest_state]
        if summary.body and summary.body["ndet"] >= 10:
            expected[stock] = summary.body["ndet"]
    store.close()
    many = get(client, read_store, "alpha", "/api/stocks", unit="T2LightCurveSummary", field="ndet", min=10).json()
    assert {row["stock"]: row["value"] for row in many["items"]} == expected and len(expected) > 1
    few = get(client, read_store, "alpha", "/api/stocks", unit="T2LightCurveSummary", field="ndet", max=9.5).json()
    assert few["items"] and not {row["stock"] for row in few["items"]} & set(expected)
    fitted = get(client, read_store, "beta", "/api/stocks", unit="T2SNCosmoFit", field="success", equals="True").json()
    assert [row["name"] for row in fitted["items"]] == [RHU]
    assert get(client, read_store, "alpha", "/api/stocks", field="ndet", min=1).status_code == 400
    assert get(client, read_store, "alpha", "/api/stocks", unit="T2LightCurveSummary", min=1).status_code == 400


def test_results_table_and_provenance(client: TestClient, read_store: Any) -> None:
    table = get(client, read_store, "beta", f"/api/stocks/{RHU}/results", unit="T2SNCosmoFit").json()
    (row,) = table["items"]
    assert row["status"] == "ok" and row["body.parameters.z"] == pytest.approx(0.0035)
    chain = get(client, read_store, "beta", f"/api/results/{row['id']}/provenance").json()
    assert chain["result"]["id"] == row["id"] and chain["trace"]["unit"] == "T2SNCosmoFit"
    assert chain["state"]["stock"] == chain["stock"]["id"] and chain["datapoints"] and chain["alerts"]
    assert chain["runs"] and chain["runs"][0]["job_digest"]
    assert all("ZTF_PUB" in dp["tags"] for dp in chain["datapoints"])
    assert get(client, read_store, "beta", "/api/results/999999/provenance").status_code == 404
