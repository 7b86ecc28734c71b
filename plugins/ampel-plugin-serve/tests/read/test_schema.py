"""Schemathesis against the read API's OpenAPI schema (/openapi.json, shown at /docs): generated
requests to every /api endpoint, with a valid token, get no 5xx and answers that match the schema
(status codes, content types, bodies)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from ampel_serve.app import ServeSettings, create_app

schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def api_schema(read_store: Any) -> Any:
    from ampel_serve.teams import TeamBook

    teams = TeamBook(read_store.url)
    token = teams.new_token("beta", rate_limit=1_000_000)  # the generated requests stay under the limit
    teams.close()
    app = create_app(ServeSettings(store=read_store.url, data_dir=read_store.data_dir))
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/api/")
    loaded.fuzz_token = token
    return loaded


OPERATIONS = ["GET /api/channels", "GET /api/stocks", "GET /api/stocks/{stock}", "GET /api/stocks/{stock}/lightcurve",
              "GET /api/stocks/{stock}/results", "GET /api/cone", "GET /api/results/{result}",
              "GET /api/results/{result}/provenance"]


@pytest.mark.parametrize("label", OPERATIONS)
def test_read_api_conforms_to_its_schema(api_schema: Any, label: str) -> None:
    # schemathesis' own pytest integration does not load under this pytest; drive its strategies
    from hypothesis import given

    (operation,) = [found.ok() for found in api_schema.get_all_operations() if found.ok().label == label]
    headers = {"Authorization": f"Bearer {api_schema.fuzz_token}"}

    @given(operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        # a 400 for parameters that do not go together (field without unit) is documented, not a failure
        case.call_and_validate(headers=headers, excluded_checks=[schemathesis.checks.positive_data_acceptance])

    check()


def test_the_schema_documents_every_read_endpoint(api_schema: Any) -> None:
    assert {found.ok().label for found in api_schema.get_all_operations()} == set(OPERATIONS)
