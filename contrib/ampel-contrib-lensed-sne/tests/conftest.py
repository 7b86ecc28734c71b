"""Fixtures of this package's tests: a registry that knows the core's built-ins, the plugins this
package builds on (ztf, sncosmo, catalogs) and this package, whatever else is installed; the real
ZTF alerts shipped with AMPEL; cadences drawn from them; and a scratch catalogue folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ampel_catalogs import plugin as catalogs_plugin
from ampel_core.models import Alert
from ampel_core.registry import Registry
from ampel_core.unit_check import read_alerts
from ampel_sncosmo import plugin as sncosmo_plugin
from ampel_ztf import plugin as ztf_plugin

from ampel_contrib_lensed_sne import plugin
from ampel_contrib_lensed_sne.simulate import GALAXY_COLUMNS, Cadence, cadences

DATA = Path(__file__).parent / "data"
PACKAGE = Path(__file__).parent.parent
#: The repository root (contrib/<package>/../..), where AMPEL's shipped ZTF sample and GWGC live
REPOSITORY = PACKAGE.parent.parent
ZTF_SAMPLE = REPOSITORY / "docs" / "examples" / "data" / "ztf"
GWGC = REPOSITORY / "docs" / "examples" / "data" / "catalogs" / "gwgc" / "gwgc_good.csv"


@pytest.fixture
def registry(register_plugin: Any) -> Registry:
    """This package and the plugins it builds on, registered through their plugin modules as the
    ``ampel`` entry points would; ``register_plugin`` (ampel_core.testing) blocks the discovery of
    anything else installed."""
    register_plugin(ztf_plugin, "ampel-plugin-ztf")
    register_plugin(sncosmo_plugin, "ampel-plugin-sncosmo")
    register_plugin(catalogs_plugin, "ampel-plugin-catalogs")
    return register_plugin(plugin, "ampel-contrib-lensed-sne")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def ztf_alerts() -> list[Alert]:
    """The 62 real ZTF alerts shipped with AMPEL (docs/examples/data/ztf, see its README.md)."""
    if not ZTF_SAMPLE.is_dir():
        pytest.skip(f"needs AMPEL's shipped ZTF sample in {ZTF_SAMPLE} (a checkout of the AMPEL repository)")
    return read_alerts(ZTF_SAMPLE, format="ztf", pattern="*.avro")


@pytest.fixture(scope="session")
def sn2021rhu(ztf_alerts: list[Alert]) -> list[Alert]:
    """The 34 alerts of SN 2021rhu (ZTF21abiuvdk), a normal SN Ia in NGC 7814, in time order."""
    return sorted((a for a in ztf_alerts if a.stock_name == "ZTF21abiuvdk"), key=lambda a: a.trigger.time)


@pytest.fixture(scope="session")
def sn2021rhu_light_curve(sn2021rhu: list[Alert]) -> list[Any]:
    """Every datapoint of SN 2021rhu's 34 alerts, once (the state the store builds from all of them;
    one alert carries only 30 days of history)."""
    points = {dp.id: dp for alert in sn2021rhu for dp in alert.datapoints}
    return sorted(points.values(), key=lambda dp: (dp.time, dp.id))


@pytest.fixture(scope="session")
def ztf_cadences(ztf_alerts: list[Alert]) -> list[Cadence]:
    """Epochs (time, band, noise) of every shipped object with at least 20 of them."""
    return cadences(ztf_alerts)


@pytest.fixture(scope="session")
def gwgc() -> dict[str, Any]:
    """The ``catalog`` config of AMPEL's shipped GWGC file (docs/examples/data/catalogs/gwgc)."""
    if not GWGC.exists():
        pytest.skip(f"needs AMPEL's shipped GWGC catalogue {GWGC} (a checkout of the AMPEL repository)")
    return {"file": str(GWGC), **GALAXY_COLUMNS}


@pytest.fixture
def job_parameters(tmp_path: Path, gwgc: dict[str, Any], ztf_alerts: list[Alert]) -> dict[str, str]:
    """The parameters of jobs/lensed-search.yml with absolute paths, the report in tmp_path."""
    return {"alerts": str(ZTF_SAMPLE), "catalogs": str(GWGC.parent.parent), "report": str(tmp_path / "report")}


@pytest.fixture
def catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch $AMPEL_CATALOGS, where catalogue files are imported on first use."""
    monkeypatch.setenv("AMPEL_CATALOGS", str(tmp_path / "catalogs"))
    return tmp_path / "catalogs"


@pytest.fixture
def analyse() -> Any:
    """Run T2HostGalaxy, T2SNCosmoFit and T2LensedSNColours, as the job configures them, on the state
    of ``datapoints``; return the three result bodies by unit name (and the state as ``state``)."""
    from ampel_catalogs.hosts import T2HostGalaxy
    from ampel_core.testing import run_unit, state_view
    from ampel_sncosmo.fit import T2SNCosmoFit

    from ampel_contrib_lensed_sne.t2_colours import T2LensedSNColours

    def run(datapoints: Any, catalog: dict[str, Any], name: str = "test", **config: Any) -> dict[str, Any]:
        unit = T2LensedSNColours(host={"catalog": catalog}, **config)
        state = state_view(list(datapoints), name=name)
        host = run_unit(T2HostGalaxy, state, **unit.host)
        fit = run_unit(T2SNCosmoFit, state, {"T2HostGalaxy": host}, **unit.fit)
        result = run_unit(unit, state, {"T2HostGalaxy": host, "T2SNCosmoFit": fit})
        return {"state": state, "T2HostGalaxy": host, "T2SNCosmoFit": fit, "T2LensedSNColours": result}

    return run
