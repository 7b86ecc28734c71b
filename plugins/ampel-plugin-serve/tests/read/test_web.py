"""The web view in a real headless browser: Debian's chromium driven by Playwright through its
executable path (no browser download), against the app served by uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
RHU, PRIVATE = "ZTF21abiuvdk", "ZTF18abxhyqv"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


def logged_in(browser: Any, server: str, token: str) -> Any:
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(f"{server}/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/")
    return page


def test_login_sets_a_strict_http_only_cookie(browser: Any, server: str, read_store: Any) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{server}/stocks/{RHU}")
    assert page.url == f"{server}/login"  # no token: the login form
    page.fill("#token", "wrong.token")
    page.click("button[type=submit]")
    assert "invalid token" in page.text_content(".error")
    page = logged_in(browser, server, read_store.tokens["alpha"])
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "ampel_token" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    page.goto(f"{server}/logout")
    assert page.url == f"{server}/login" and page.context.cookies() == []


def test_channels_page_links_to_stock_pages_that_plot(browser: Any, server: str, read_store: Any) -> None:
    page = logged_in(browser, server, read_store.tokens["alpha"])
    assert page.text_content("h1") == "Channels of alpha"
    assert page.locator("section.channel h2").all_text_contents() == ["ALPHA_ALL"]
    links = page.locator("a.stock")
    assert links.count() > 20
    page.click(f"a.stock:text('{RHU}')")
    page.wait_for_url(f"{server}/stocks/{RHU}")
    page.wait_for_selector("svg#lightcurve[data-rendered]")
    rows = page.request.get(f"{server}/api/stocks/{RHU}/lightcurve").json()["items"]
    detections = [r for r in rows if not r["upper_limit"] and not r["forced"] and r["flux"] > 0]
    negatives = [r for r in rows if not r["upper_limit"] and not r["forced"] and r["flux"] <= 0]
    limits = [r for r in rows if r["upper_limit"]]
    assert page.locator("svg g.point.detection circle").count() == len(detections) > 10
    assert page.locator("svg g.point.negative").count() == len(negatives)
    assert page.locator("svg g.point.limit path").count() == len(limits) > 0
    assert page.locator("svg polyline.model").count() == 0  # alpha fitted no model
    assert set(page.locator("svg g.point").evaluate_all("gs => gs.map(g => g.dataset.band)")) == {"ztfg", "ztfr"}
    assert page.errors == []


def test_stock_page_with_salt2_model_results_and_provenance(browser: Any, server: str, read_store: Any) -> None:
    page = logged_in(browser, server, read_store.tokens["beta"])
    page.goto(f"{server}/stocks/{RHU}")
    page.wait_for_selector("svg#lightcurve[data-rendered]")
    models = page.locator("svg polyline.model")
    assert models.count() == 2 and set(models.evaluate_all("ls => ls.map(l => l.dataset.band)")) == {"ztfg", "ztfr"}
    assert all(len(points.split()) > 50 for points in models.evaluate_all("ls => ls.map(l => l.getAttribute('points'))"))
    assert page.locator("table.results tr.result").count() == 1
    page.click("a.provenance")
    page.wait_for_selector("#runs")
    assert "T2SNCosmoFit" in page.text_content("#trace")
    assert page.locator("#datapoints tbody tr").count() > 10 and page.locator("#alerts li").count() >= 1
    page.click(f"a:text('{RHU}')")
    page.wait_for_url(f"{server}/stocks/{RHU}")
    assert page.errors == []


def test_every_link_works(browser: Any, server: str, read_store: Any) -> None:
    page = logged_in(browser, server, read_store.tokens["beta"])
    seen, queue = set(), [f"{server}/", f"{server}/stocks/{RHU}", f"{server}/stocks/{PRIVATE}"]
    while queue and len(seen) < 80:
        url = queue.pop()
        if url in seen or url.endswith("/logout"):
            continue
        seen.add(url)
        answer = page.request.get(url)
        assert answer.status == 200, url
        if "text/html" in answer.headers["content-type"]:
            page.goto(url)
            hrefs = page.locator("a[href]").evaluate_all("as => as.map(a => a.href)")
            queue += [h.split("#")[0] for h in hrefs if h.startswith(server)]
    assert any("/results/" in url for url in seen) and any("/api/" in url for url in seen)


def test_a_team_cannot_open_another_teams_pages(browser: Any, server: str, read_store: Any) -> None:
    beta = logged_in(browser, server, read_store.tokens["beta"])
    beta.goto(f"{server}/stocks/{RHU}")
    result_link = beta.get_attribute("a.provenance", "href")
    alpha = logged_in(browser, server, read_store.tokens["alpha"])
    for path in (f"/stocks/{PRIVATE}", result_link, "/stocks/ZTF00nothere"):
        answer = alpha.goto(f"{server}{path}")
        assert answer.status == 404 and alpha.text_content("h1") == "Not found", path
    gamma = logged_in(browser, server, read_store.tokens["gamma"])
    assert gamma.locator("section.channel").count() == 0
    assert gamma.goto(f"{server}/stocks/{RHU}").status == 404


def test_static_files_only_by_their_names(server: str, browser: Any) -> None:
    page = browser.new_context().new_page()
    assert page.request.get(f"{server}/static/lightcurve.js").status == 200
    for name in ("..%2Fweb.py", "..%2F..%2Fampel_serve%2Fapi.py", "%2Fetc%2Fpasswd", "nothere.js"):
        assert page.request.get(f"{server}/static/{name}").status == 404, name
