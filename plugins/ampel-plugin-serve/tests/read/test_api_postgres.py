"""The read API on a PostgreSQL store (a scratch schema of the test server): the same answers as
on SQLite for the same teams, jobs and alerts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ampel_serve.app import ServeSettings, create_app

@pytest.fixture(scope="module")
def postgres_read_store(postgres_url: str, tmp_path_factory: pytest.TempPathFactory,
                        read_store_builder: Any) -> Iterator[Any]:
    from ampel_postgres.testing import scratch_schema

    # postgres_url (ampel_postgres.testing, through ../conftest.py): skips without a server, fails in CI
    with scratch_schema(postgres_url) as url:
        yield read_store_builder(url, tmp_path_factory.mktemp("pg") / "data")


def test_the_same_answers_as_on_sqlite(postgres_read_store: Any, read_store: Any) -> None:
    answers = []
    for built in (read_store, postgres_read_store):
        app = create_app(ServeSettings(store=built.url, data_dir=built.data_dir))
        with TestClient(app) as client:
            def get(team: str, path: str, built: Any = built, client: TestClient = client, **params: Any) -> Any:
                answer = client.get(path, params=params, headers={"Authorization": f"Bearer {built.tokens[team]}"})
                assert answer.status_code in (200, 404), answer.text
                return answer.json() if answer.status_code == 200 else 404

            rhu = get("beta", "/api/stocks/ZTF21abiuvdk")
            answers.append({
                "alpha_lightcurve": get("alpha", "/api/stocks/ZTF21abiuvdk/lightcurve")["items"],
                "beta_private": [dp["id"] for dp in get("beta", "/api/stocks/ZTF18abxhyqv")["datapoints"]],
                "alpha_private": get("alpha", "/api/stocks/ZTF18abxhyqv"),
                "cone": [(r["name"], round(r["distance"], 9)) for r in get("alpha", "/api/cone", ra=0.8, dec=16.1,
                                                                            radius=5, limit=1000)["items"]],
                "latest": sorted(r["name"] for r in get("alpha", "/api/stocks", limit=1000)["items"]),
                "by_value": sorted(r["name"] for r in get("alpha", "/api/stocks", unit="T2LightCurveSummary",
                                                          field="ndet", min=10)["items"]),
                "fit": [(r["unit"], r["body"]["parameters"]) for r in rhu["results"]],
                "provenance_points": len(get("beta", f"/api/results/{rhu['results'][0]['id']}/provenance")["datapoints"]),
                "gamma": get("gamma", "/api/stocks/ZTF21abiuvdk"),
            })
    sqlite, postgres = answers
    assert postgres["alpha_private"] == 404 and postgres["gamma"] == 404 and postgres["cone"]
    for key in sqlite:
        if key == "fit":  # one SALT2 fit per store: equal to fitting precision
            for (unit, a), (_, b) in zip(sqlite[key], postgres[key], strict=True):
                assert unit == "T2SNCosmoFit" and a == pytest.approx(b, rel=1e-6)
        else:
            assert postgres[key] == sqlite[key], key
