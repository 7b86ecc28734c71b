"""Job uploads through ``POST /jobs`` (FastAPI's TestClient on the real app, real stores):
validation against the installed units' schemas and the team's rights, data-only YAML, size
limits, paths confined to the data directory, versions, list / pause / resume / remove, and teams
kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ampel_core.errors import AmpelError
from ampel_core.store import open_store
from ampel_core.units import ReactUnit
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_serve.app import ServeSettings, create_app
from ampel_serve.auth import Team
from ampel_serve.jobs import JobRefused, confine_paths, load_upload, prepare, secret_prefix
from ampel_serve.teams import TeamBook


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ServeSettings(store=store_url, data_dir=tmp_path / "data", max_upload_bytes=20_000))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def tokens(client: TestClient) -> dict[str, dict[str, str]]:
    """Headers of team A (ZTF_PUB) and team B (ZTF_PUB, ZTF_PRIV)."""
    teams = client.app.state.teams  # type: ignore[attr-defined]
    return {"A": {"Authorization": f"Bearer {teams.add_team('A', ['ZTF_PUB'])}"},
            "B": {"Authorization": f"Bearer {teams.add_team('B', ['ZTF_PUB', 'ZTF_PRIV'])}"}}


def _job(job_file: Path, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(job_file.read_text())
    for key, value in changes.items():
        document[key] = value
    return document


def _upload(client: TestClient, headers: dict[str, str], document: dict[str, Any] | str | bytes) -> Any:
    body = document if isinstance(document, (str, bytes)) else yaml.safe_dump(document)
    return client.post("/jobs", content=body, headers={**headers, "Content-Type": "application/yaml"})


def test_upload_validates_stores_versions_and_activates(client: TestClient, tokens: Any, job_file: Path,
                                                         store_url: str) -> None:
    first = _upload(client, tokens["A"], job_file.read_bytes())
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["name"], body["version"], body["status"], body["channels"]) == ("sn-candidates", 1, "active",
                                                                                  ["TEAM_A_SN"])
    assert len(body["digest"]) == 64 and len(body["traces"]) == 3  # filter, T2 unit, T3 react unit
    store = open_store(store_url, read_only=True)
    try:  # the traces are in the store at once (provenance resolves before the first run)
        assert all(store.get_trace(trace) is not None for trace in body["traces"])
    finally:
        store.close()
    again = _upload(client, tokens["A"], job_file.read_bytes())
    assert again.status_code == 200 and again.json()["version"] == 1 and not again.json()["new"]
    changed = _job(job_file)
    changed["channels"][0]["filter"]["config"]["min_ndet"] = 3
    second = _upload(client, tokens["A"], changed).json()
    assert second["version"] == 2 and second["digest"] != body["digest"]
    listed = client.get("/jobs", headers=tokens["A"]).json()
    assert [(v["version"], v["status"]) for v in listed] == [(1, "superseded"), (2, "active")]
    shown = client.get("/jobs/sn-candidates", headers=tokens["A"]).json()
    assert shown["job"]["channels"][0]["filter"]["config"]["min_ndet"] == 3
    assert client.app.state.teams.team("A").channels == {"TEAM_A_SN"}  # type: ignore[attr-defined]


def test_pause_resume_remove(client: TestClient, tokens: Any, job_file: Path) -> None:
    _upload(client, tokens["A"], job_file.read_bytes())
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    assert client.post("/jobs/sn-candidates/pause", headers=tokens["A"]).json()["status"] == "paused"
    assert jobs.active() == []
    assert client.post("/jobs/sn-candidates/resume", headers=tokens["A"]).json()["status"] == "active"
    assert [v.name for v in jobs.active()] == ["sn-candidates"]
    generation = jobs.generation()
    assert client.delete("/jobs/sn-candidates", headers=tokens["A"]).json()["status"] == "removed"
    assert jobs.active() == [] and jobs.generation() != generation  # the service sees the change
    assert client.post("/jobs/sn-candidates/pause", headers=tokens["A"]).status_code == 404
    # the channel stays the team's (its results keep its name): another team cannot take it
    taken = _upload(client, tokens["B"], job_file.read_bytes())
    assert taken.status_code == 422 and "channel name 'TEAM_A_SN' is another team's" in taken.json()["detail"]
    assert client.app.state.teams.team("A").channels == {"TEAM_A_SN"}  # type: ignore[attr-defined]
    # another job of the same team can
    assert _upload(client, tokens["A"], _job(job_file, name="sn-candidates-2")).status_code == 201


def test_teams_are_kept_apart(client: TestClient, tokens: Any, job_file: Path) -> None:
    assert _upload(client, tokens["A"], job_file.read_bytes()).status_code == 201
    assert client.get("/jobs", headers=tokens["B"]).json() == []
    assert client.get("/jobs/sn-candidates", headers=tokens["B"]).status_code == 404
    for action in ("pause", "resume", "replay"):
        assert client.post(f"/jobs/sn-candidates/{action}", headers=tokens["B"]).status_code == 404
    assert client.delete("/jobs/sn-candidates", headers=tokens["B"]).status_code == 404
    taken = _upload(client, tokens["B"], _job(job_file, name="mine"))  # same channel name, other team
    assert taken.status_code == 422 and "channel name 'TEAM_A_SN' is another team's" in taken.json()["detail"]
    mine = _upload(client, tokens["A"], _job(job_file, name="second"))  # the team's other job has it
    assert mine.status_code == 422 and "belongs to your job 'sn-candidates'" in mine.json()["detail"]


@pytest.mark.parametrize(("change", "status", "message"), [
    (lambda d: d["channels"][0]["filter"].update(unit="NoSuchFilter"), 422, "NoSuchFilter"),
    (lambda d: d["channels"][0]["filter"]["config"].update(min_ndet="many"), 422, "min_ndet"),
    (lambda d: d["channels"][0]["filter"]["config"].update(surprise=1), 422, "surprise"),
    (lambda d: d["channels"][0]["t2"].append({"unit": "T3TableReport"}), 422, "not a T2 unit"),
    (lambda d: d["channels"][0].update(access=["ZTF_PRIV"]), 422, "beyond your team's rights"),
    (lambda d: d["channels"][0].update(access=[]), 422, "give its access"),
    (lambda d: d["tasks"][2].update(select={}), 422, "must select one of the job's channels"),
    (lambda d: d["tasks"][2]["react"][0]["config"].update(output="../../outside.csv"), 422,
     "outside the server's data directory"),
    (lambda d: d["tasks"][2]["react"][0]["config"].update(output="/etc/cron.d/evil"), 422,
     "outside the server's data directory"),
    (lambda d: d["tasks"][2]["react"][0]["config"].update(output="~/x.csv"), 422, "not a path inside"),
    (lambda d: d["tasks"][2]["react"][0]["config"].update(output="file:///etc/passwd"), 422, "only http(s) URLs"),
    (lambda d: d.update(tasks="nothing"), 422, "tasks"),
    (lambda d: d.update(name="../etc"), 422, "job name '../etc'"),
    (lambda d: (d["channels"][0].update(name="A B"), d["tasks"][2]["select"].update(channel="A B")), 422,
     "channel name 'A B'"),
])
def test_invalid_uploads_are_refused_with_the_reason(client: TestClient, tokens: Any, job_file: Path, change: Any,
                                                     status: int, message: str) -> None:
    document = _job(job_file)
    change(document)
    answer = _upload(client, tokens["A"], document)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text
    assert client.get("/jobs", headers=tokens["A"]).json() == []  # nothing stored


def test_paths_inside_the_data_directory_are_taken_from_there(client: TestClient, tokens: Any, job_file: Path,
                                                              tmp_path: Path) -> None:
    document = _job(job_file)
    document["tasks"][2]["react"][0]["config"]["output"] = "reports/candidates.csv"
    assert _upload(client, tokens["A"], document).status_code == 201
    shown = client.get("/jobs/sn-candidates", headers=tokens["A"]).json()["job"]
    assert shown["tasks"][2]["react"][0]["config"]["output"] == str((tmp_path / "data/reports/candidates.csv").resolve())


def test_uploads_are_data_only_and_bounded(client: TestClient, tokens: Any, job_file: Path) -> None:
    tagged = "!!python/object/apply:os.system ['touch /tmp/pwned']\n"
    answer = _upload(client, tokens["A"], tagged)
    assert answer.status_code == 422 and "data only" in answer.json()["detail"]
    assert not Path("/tmp/pwned").exists()
    big = job_file.read_text() + "# " + "x" * 30_000 + "\n"
    answer = _upload(client, tokens["A"], big)
    assert answer.status_code == 413 and "at most 20000" in answer.json()["detail"]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    answer = _upload(client, tokens["A"], bomb)
    assert answer.status_code == 422 and "more than 100000 values" in answer.json()["detail"]
    for text in ("- a list\n", "plain", b"\xff\xfe", "name: [unclosed\n"):
        answer = _upload(client, tokens["A"], text)
        assert answer.status_code == 422, text


def test_uploads_need_a_token(client: TestClient, job_file: Path) -> None:
    assert _upload(client, {}, job_file.read_bytes()).status_code == 401
    assert _upload(client, {"Authorization": "Bearer nope"}, job_file.read_bytes()).status_code == 401


def test_replay_needs_an_ingesting_server(client: TestClient, tokens: Any, job_file: Path) -> None:
    _upload(client, tokens["A"], job_file.read_bytes())
    answer = client.post("/jobs/sn-candidates/replay", headers=tokens["A"])
    assert answer.status_code == 409 and "nothing to replay" in answer.json()["detail"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./~\\:\0-_ "), max_size=30), st.sampled_from(["output", "columns", "x"]))
def test_confined_paths_stay_inside_the_data_directory(tmp_path_factory: pytest.TempPathFactory, value: str,
                                                      key: str) -> None:
    root = tmp_path_factory.getbasetemp() / "data"
    root.mkdir(exist_ok=True)
    try:
        confined = confine_paths({key: value}, root)[key]
    except JobRefused:
        return
    if confined != value:  # taken for a path: now absolute, inside the data directory
        resolved = Path(confined)
        assert resolved.is_absolute() and (resolved == root.resolve() or root.resolve() in resolved.parents)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_upload_is_a_mapping_or_refused(payload: bytes) -> None:
    try:
        document = load_upload(payload, 200)
    except JobRefused:
        return
    assert isinstance(document, dict) and len(payload) <= 200


class PushLike(ReactUnit):
    """A react unit that reads a secret from the environment variable ``url_env``."""

    url_env: str = "AMPEL_PUSH_WEBHOOK"

    def process(self, views: Any) -> dict[str, Any]:
        return {}


def _secret_job(url_env: str | None) -> dict[str, Any]:
    react: dict[str, Any] = {"unit": "PushLike", "config": {} if url_env is None else {"url_env": url_env}}
    return {"name": "push", "channels": [{"name": "C", "access": ["ZTF_PUB"]}],
            "tasks": [{"tier": 3, "select": {"channel": "C"}, "react": [react]}]}


def test_units_may_read_only_the_teams_own_secrets(register_units: Any, tmp_path: Path) -> None:
    registry = register_units(PushLike)
    team = Team("SN_TEAM", frozenset({"ZTF_PUB"}), frozenset())
    assert secret_prefix("SN_TEAM") == secret_prefix("sn-team") == "AMPEL_PUSH_SN_TEAM_"
    job, traces = prepare(_secret_job("AMPEL_PUSH_SN_TEAM_SLACK"), team, tmp_path, registry)
    assert job.name == "push" and [t.unit for t in traces] == ["AcceptAll", "PushLike"]
    for url_env in ("AMPEL_PUSH_OTHER_SLACK", "AMPEL_PUSH_SN_SLACK", None):  # None: the unit's default
        with pytest.raises(JobRefused, match="only environment variables named AMPEL_PUSH_SN_TEAM_"):
            prepare(_secret_job(url_env), team, tmp_path, registry)


def test_team_names_whose_secrets_would_overlap_are_refused(store_url: str) -> None:
    book = TeamBook(store_url)
    try:
        book.add_team("SN", ["ZTF_PUB"])
        for close in ("SN_TEAM", "sn", "Sn.x"):
            with pytest.raises(AmpelError, match="too close to team 'SN'"):
                book.add_team(close, ["ZTF_PUB"])
        book.add_team("SNE", ["ZTF_PUB"])
        book.add_team("S", ["ZTF_PUB"])  # S_ is no prefix of SN_
    finally:
        book.close()
