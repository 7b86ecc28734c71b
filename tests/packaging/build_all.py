"""Build every distribution of this repository with the oldest setuptools it declares and the newest.

    python tests/packaging/build_all.py [--out DIR] [--only NAME ...]

For each distribution (ampel-core at the root, plugins/*, contrib/*, tests/fixtures/ampel-plugin-tiny and a
project rendered from cookiecutter/), and for each of two setuptools versions — the minimum of its
``[build-system] requires`` and the newest on the index — this builds an sdist and, from that sdist,
a wheel (``python -m build --no-isolation`` in a venv holding exactly that setuptools). It then checks
that

- both builds succeed,
- every file of the distribution's import packages that git tracks (model files, bandpasses, Avro
  schemas, ``py.typed``, ...) is in the wheel, and
- the two wheels hold the same files.

The sources are copied (the files git tracks or would track) into a scratch folder before building,
so that ``build/`` and ``*.egg-info`` folders left by editable installs cannot leak into a build.
The newest setuptools' wheels are left in ``--out`` (default ``dist/``) for ``.ci/run`` to install.
Exit status 0 when every check passes; 1 with one line per failure otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
# setuptools < 70.1 builds wheels with the separate `wheel` package; `build` drives both backends
BUILD_TOOLS = ["build>=1.0", "wheel>=0.42"]


@dataclass(frozen=True)
class Distribution:
    name: str
    source: Path  # the folder holding pyproject.toml (a copy, for the cookiecutter render)
    packages: tuple[Path, ...]  # its import packages' folders, whose tracked files must all ship

    def setuptools_requirement(self) -> Requirement:
        """The setuptools of ``[build-system] requires``; it must state a minimum (e.g. setuptools>=77)."""
        requires = tomllib.loads((self.source / "pyproject.toml").read_text())["build-system"]["requires"]
        for line in requires:
            requirement = Requirement(line)
            if requirement.name == "setuptools" and any(spec.operator in (">=", "==", "~=")
                                                        for spec in requirement.specifier):
                return requirement
        raise SystemExit(f"{self.name}: [build-system] requires names no setuptools minimum (e.g. setuptools>=77)")


def available_setuptools(python: Path) -> list[Version]:
    """The setuptools releases on the index (yanked ones excluded), oldest first."""
    listing = subprocess.run([python, "-m", "pip", "index", "versions", "--disable-pip-version-check", "setuptools"],
                             capture_output=True, text=True, check=True).stdout
    line = next(line for line in listing.splitlines() if line.startswith("Available versions:"))
    return sorted(Version(version) for version in line.partition(":")[2].replace(" ", "").split(","))


def versions_to_build(requirement: Requirement, index: list[Version], every_major: bool) -> list[Version]:
    """The setuptools releases to build with: the oldest that ``requirement`` allows (its declared
    minimum, as a user with that setuptools builds), the newest, and with ``every_major`` the first
    release of each major version in between (where incompatible changes land, e.g. 81.0.0)."""
    allowed = [version for version in index if version in requirement.specifier]
    if not allowed:
        raise SystemExit(f"no setuptools release on the index satisfies {requirement}")
    chosen = {allowed[0], allowed[-1]}
    if every_major:
        for version in allowed:
            if not any(other.major == version.major for other in chosen if other <= version):
                chosen.add(version)
    return sorted(chosen)


def tracked_files(folder: Path) -> list[Path]:
    """Files under ``folder`` that git tracks or would track (not ignored), relative to ``folder``;
    all its files outside a git work tree (the rendered template)."""
    git = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "."],
                         cwd=folder, capture_output=True, text=True)
    if git.returncode != 0:
        return [path.relative_to(folder) for path in folder.rglob("*") if path.is_file()]
    listing = git.stdout
    return [Path(name) for name in listing.split("\0") if name and (folder / name).is_file()]


def copy_sources(folder: Path, destination: Path) -> Path:
    for relative in tracked_files(folder):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / relative, target)
    return destination


def render_template(destination: Path) -> Path:
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(REPO / "cookiecutter"), no_input=True, output_dir=str(destination)))


def import_packages(source: Path) -> tuple[Path, ...]:
    return tuple(sorted(path for path in (source / "src").iterdir()
                        if path.is_dir() and not path.name.endswith(".egg-info")))


def distributions(scratch: Path) -> list[Distribution]:
    """Every distribution in the repository, and one rendered from the cookiecutter template."""
    found = [Distribution("ampel-core", REPO, (REPO / "ampel_core",))]
    contrib = sorted(folder for folder in (REPO / "contrib").glob("*") if (folder / "pyproject.toml").is_file())
    for folder in [*sorted((REPO / "plugins").glob("ampel-plugin-*")), *contrib, REPO / "tests/fixtures/ampel-plugin-tiny"]:
        found.append(Distribution(folder.name, folder, import_packages(folder)))
    rendered = render_template(scratch / "cookiecutter")
    found.append(Distribution(f"cookiecutter ({rendered.name})", rendered, import_packages(rendered)))
    return found


def builder(version: Version, scratch: Path) -> Path:
    """A venv holding setuptools ``version`` and the build tools; its python."""
    folder = scratch / f"venv-setuptools-{version}"
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"setuptools=={version}",
                          *BUILD_TOOLS], capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"cannot install setuptools {version}:\n{pip.stdout}{pip.stderr}")
    return python


def build(distribution: Distribution, python: Path, scratch: Path, out: Path) -> tuple[Path | None, str]:
    """sdist, then a wheel from it; (the wheel or None, the build's output)."""
    source = copy_sources(distribution.source, Path(tempfile.mkdtemp(prefix="src-", dir=scratch)))
    result = subprocess.run([python, "-m", "build", "--no-isolation", "--outdir", out, source],
                            capture_output=True, text=True)
    wheels = sorted(out.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        return None, result.stdout + result.stderr
    return wheels[0], result.stdout


def check_wheel(distribution: Distribution, wheel: Path) -> list[str]:
    """Tracked files of the distribution's import packages missing from ``wheel``."""
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = []
    for package in distribution.packages:
        for relative in tracked_files(package):
            name = (Path(package.name) / relative).as_posix()
            if "__pycache__" not in name and name not in shipped:
                missing.append(name)
    return missing


def wheel_contents(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the newest setuptools' wheels go")
    parser.add_argument("--only", nargs="*", help="build only these distributions (names as printed)")
    parser.add_argument("--ends-only", action="store_true",
                        help="only the oldest allowed and the newest setuptools, not the first release of each major")
    arguments = parser.parse_args()
    out = arguments.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    index = available_setuptools(Path(sys.executable))
    with tempfile.TemporaryDirectory(prefix="ampel-build-all-") as scratch_name, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        scratch = Path(scratch_name)
        plan = {distribution: versions_to_build(distribution.setuptools_requirement(), index, not arguments.ends_only)
                for distribution in distributions(scratch)
                if not arguments.only or distribution.name in arguments.only}
        versions = sorted({version for chosen in plan.values() for version in chosen})
        print(f"setuptools {', '.join(map(str, versions))}; newest on the index: {index[-1]}", flush=True)
        pythons = dict(zip(versions, pool.map(lambda version: builder(version, scratch), versions), strict=True))

        def build_one(job: tuple[Distribution, Version]) -> tuple[Distribution, Version, Path | None, str, float]:
            distribution, version = job
            begun = time.perf_counter()
            wheel, log = build(distribution, pythons[version], scratch, Path(tempfile.mkdtemp(prefix="dist-", dir=scratch)))
            return distribution, version, wheel, log, time.perf_counter() - begun

        failures: list[str] = []
        contents: dict[Distribution, dict[Version, set[str]]] = {distribution: {} for distribution in plan}
        jobs = [(distribution, version) for distribution, chosen in plan.items() for version in chosen]
        for distribution, version, wheel, log, seconds in pool.map(build_one, jobs):
            label = f"{distribution.name} with setuptools {version}"
            if wheel is None:
                failures.append(f"{label}: build failed:\n{log.strip()[-3000:]}")
                print(f"FAIL {label}: build failed", flush=True)
                continue
            missing = check_wheel(distribution, wheel)
            if missing:
                failures.append(f"{label}: {wheel.name} lacks {len(missing)} tracked files, e.g. {missing[:5]}")
            contents[distribution][version] = wheel_contents(wheel)
            print(f"{'FAIL' if missing else 'ok  '} {label}: {wheel.name}, {len(contents[distribution][version])} "
                  f"files, {seconds:.1f} s", flush=True)
            if version == plan[distribution][-1]:
                for old in out.glob(f"{wheel.name.split('-')[0]}-*.whl"):
                    old.unlink()
                shutil.copy2(wheel, out / wheel.name)
        for distribution, built in contents.items():
            newest = plan[distribution][-1]
            for version, files in built.items():
                if newest in built and files != built[newest]:
                    failures.append(f"{distribution.name}: the wheels of setuptools {version} and {newest} differ: "
                                    f"only in {version}: {sorted(files - built[newest])[:5]}, "
                                    f"only in {newest}: {sorted(built[newest] - files)[:5]}")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"{len(jobs)} builds, {len(failures)} failures, {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
