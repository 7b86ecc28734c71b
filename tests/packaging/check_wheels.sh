#!/usr/bin/env bash
# Build every distribution (tests/packaging/build_all.py: oldest allowed setuptools, each later
# major's first release, newest), install the newest setuptools' wheels of ampel-core and the plugins
# (not editable) into a clean venv, and run `ampel config build` and the ZTF quickstart from there:
# from a scratch folder, so that this source tree cannot shadow the installed packages.
# Needs the test extra (build, cookiecutter) in the calling Python.
# Usage: tests/packaging/check_wheels.sh [build_all.py options]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$(mktemp -d -t ampel-wheels-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
[[ -n "${KEEP_SCRATCH:-}" ]] && trap - EXIT && echo "scratch: $scratch"

python "$repo/tests/packaging/build_all.py" --out "$scratch/wheels" "$@"  # e.g. --ends-only

python3 -m venv "$scratch/venv"
# The distributions a user installs; the test fixture and the template's example are not among them.
core=$(ls "$scratch"/wheels/ampel_core-*.whl)
"$scratch/venv/bin/pip" install -q --disable-pip-version-check \
  "$core[plot,prov]" "$scratch"/wheels/ampel_plugin_{ztf,sncosmo,lsst,postgres,catalogs}-*.whl \
  $(ls "$scratch"/wheels/ampel_contrib_*-*.whl 2>/dev/null)  # contrib/: the science teams' packages

cd "$scratch"
unset PYTHONPATH
"$scratch/venv/bin/python" - "$scratch/venv" <<'EOF'
import sys
from pathlib import Path

import ampel_core, ampel_lsst, ampel_postgres, ampel_sncosmo, ampel_ztf

venv = Path(sys.argv[1]).resolve()
for module in (ampel_core, ampel_lsst, ampel_postgres, ampel_sncosmo, ampel_ztf):
    location = Path(module.__file__).resolve()
    assert venv in location.parents, f"{module.__name__} imported from {location}, not from the installed wheel"
models = sorted((Path(ampel_sncosmo.__file__).parent / "data").rglob("*.dat"))
assert models, "ampel_sncosmo's wheel has no model or bandpass files"
print(f"installed from wheels into {venv}: {len(models)} sncosmo data files")
EOF
"$scratch/venv/bin/ampel" config build -o "$scratch/ampel_conf.yaml"
# every contrib wheel's units are in the config (its plugin module imports from the installed wheels)
for wheel in "$scratch"/wheels/ampel_contrib_*-*.whl; do
  [[ -e "$wheel" ]] || continue
  distribution=$(basename "$wheel" | cut -d- -f1 | tr _ -)
  grep -q "distribution: $distribution" "$scratch/ampel_conf.yaml" || { echo "no unit of $distribution in the config"; exit 1; }
done
"$scratch/venv/bin/ampel" job "$repo/docs/examples/ztf-quickstart.yml" --set "alerts=$repo/docs/examples/data/ztf" \
  --set "catalogs=$repo/docs/examples/data/catalogs" \
  --store "sqlite:///$scratch/q.db" --config "$scratch/ampel_conf.yaml" --no-progress --summary-json "$scratch/summary.json"
# A T2 unit that cannot find its data (e.g. SALT2 model files missing from the wheel) fails its tickets.
"$scratch/venv/bin/python" - "$scratch/summary.json" <<'EOF'
import json
import sys

summary = json.load(open(sys.argv[1]))
assert summary["status"] == "ok" and summary["tickets_failed"] == 0 and summary["tickets_done"] > 0, summary
print(f"quickstart from the installed wheels: {summary['tickets_done']} T2 tickets done, none failed")
EOF
