"""ampel_core.client against the app served on 127.0.0.1: Tables and documents equal to what the
store holds for the team."""

from __future__ import annotations

from typing import Any

import pytest

from ampel_core.client import Client, ClientError
from ampel_core.store import open_store

RHU = "ZTF21abiuvdk"


def test_light_curve_is_an_astropy_table_of_the_teams_datapoints(server: str, read_store: Any) -> None:
    client = Client(server, read_store.tokens["alpha"])
    table = client.light_curve(RHU)
    store = open_store(read_store.url, read_only=True)
    stock = store.find_stock(RHU)
    assert stock is not None
    stored = sorted((dp for dp in store.stock_datapoints(stock) if "ZTF_PUB" in dp.tags), key=lambda d: (d.time, d.id))
    store.close()
    assert list(table["id"]) == [dp.id for dp in stored]
    assert list(table["band"]) == [dp.band for dp in stored]
    assert str(table["time"].unit) == "d"
    limits = [i for i, dp in enumerate(stored) if dp.upper_limit]
    assert limits and all(table["flux"].mask[i] for i in limits)
    detections = client.light_curve(RHU, upper_limits=False)
    assert len(detections) == len(stored) - len(limits)


def test_cone_latest_and_paging(server: str, read_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import ampel_core.client

    client = Client(server, read_store.tokens["alpha"])
    near = client.cone(0.8, 16.1, 0.5)
    assert list(near["name"]) == [RHU] and near["distance"][0] < 0.5
    everything = client.latest(limit=None)
    monkeypatch.setattr(ampel_core.client, "PAGE", 7)  # several pages, stitched
    paged = client.latest(limit=None)
    assert list(paged["stock"]) == list(everything["stock"]) and len(paged) > 14
    assert list(client.latest(limit=10)["stock"]) == list(everything["stock"][:10])
    selected = client.latest(unit="T2LightCurveSummary", field="ndet", min=10)
    assert len(selected) > 1 and all(value >= 10 for value in selected["value"])


def test_documents_results_and_provenance(server: str, read_store: Any) -> None:
    client = Client(server, read_store.tokens["beta"])
    assert {c["channel"] for c in client.channels()} == {"BETA_ALL", "BETA_RHU"}
    document = client.stock(RHU)
    (fit,) = [r for r in document["results"] if r["unit"] == "T2SNCosmoFit"]
    results = client.results(RHU, unit="T2SNCosmoFit")
    assert list(results["id"]) == [fit["id"]] and results["body.parameters.z"][0] == pytest.approx(0.0035)
    chain = client.provenance(fit["id"])
    assert chain["trace"]["unit"] == "T2SNCosmoFit" and chain["datapoints"]


def test_errors_say_what_the_server_answered(server: str, read_store: Any) -> None:
    with pytest.raises(ClientError, match="401") as refused:
        Client(server, "not.a-token").channels()
    assert refused.value.status == 401
    with pytest.raises(ClientError, match="404 no stock 'ZTF18abxhyqv' in your channels"):
        Client(server, read_store.tokens["alpha"]).stock("ZTF18abxhyqv")
    with pytest.raises(ClientError, match="422"):
        Client(server, read_store.tokens["alpha"]).cone(0, 0, 6)
    with pytest.raises(ClientError, match="cannot reach"):
        Client("http://127.0.0.1:9", "x").channels()
    with pytest.raises(ClientError, match="not an http"):
        Client("ftp://host", "x")
    assert read_store.tokens["alpha"] not in repr(Client(server, read_store.tokens["alpha"]))
