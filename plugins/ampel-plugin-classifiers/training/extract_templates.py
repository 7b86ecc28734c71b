"""Resample the core-collapse SED templates into ``ampel_classifiers/data/cc_templates.npz``.

Run once, from the repository root, with ../shared/data present::

    python plugins/ampel-plugin-classifiers/training/extract_templates.py ../shared/data

Inputs: the SNANA/SDSS templates of Sako et al. 2011 (S11, ``sncosmo/models/sako/*.SED``) and the
PyCoCo templates of Vincenzi et al. 2019 (V19, ``sncosmo/models/vincenzi/*.SED``), as mirrored by
sncosmo's data site (see ../shared/data/README.md, key SNC). Each SED (phase, wavelength, flux) is
linearly resampled onto a coarser grid (phase: 1 d to +50 d, 3 d to +150 d, 10 d to +400 d;
wavelength: 1700-11000 A in 30 A steps), which keeps broad-band light curves to well under 1 % and
cuts ~30 MB of text to about 1.3 MB. Before a template's first phase the flux rises linearly from
zero over 5 days; after its last phase it fades at 0.015 mag/day. Types as sncosmo's registry gives them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

TEMPLATES = {  # file stem -> (name, type, class)
    "S11_SDSS-000018": ("s11-2004hx", "SN IIL/P", "SN II"), "S11_SDSS-001472": ("s11-2005lc", "SN IIP", "SN II"),
    "S11_SDSS-002000": ("s11-2005hl", "SN Ib", "SN Ibc"), "S11_SDSS-002744": ("s11-2005hm", "SN Ib", "SN Ibc"),
    "S11_SDSS-003818": ("s11-2005gi", "SN IIP", "SN II"), "S11_SDSS-013195": ("s11-2006fo", "SN Ic", "SN Ibc"),
    "S11_SDSS-014492": ("s11-2006jo", "SN Ib", "SN Ibc"), "S11_SDSS-014599": ("s11-2006jl", "SN IIP", "SN II"),
    "V19_SN1998bw_noHostExtCorr": ("v19-1998bw", "SN Ic-BL", "SN Ibc"),
    "V19_SN2007Y_noHostExtCorr": ("v19-2007y", "SN Ib", "SN Ibc"),
    "V19_SN2008fq_noHostExtCorr": ("v19-2008fq", "SN IIn", "SN II"),
    "V19_SN2009N_noHostExtCorr": ("v19-2009n", "SN II", "SN II"),
    "V19_SN2009kr_noHostExtCorr": ("v19-2009kr", "SN II", "SN II"),
    "V19_SN2010al_noHostExtCorr": ("v19-2010al", "SN IIn", "SN II"),
    "V19_SN2011ei_noHostExtCorr": ("v19-2011ei", "SN IIb", "SN II"),
    "V19_SN2013ge_noHostExtCorr": ("v19-2013ge", "SN Ic", "SN Ibc"),
}
PHASES = np.concatenate([np.arange(-25.0, 50.0, 1.0), np.arange(50.0, 150.0, 3.0), np.arange(150.0, 401.0, 10.0)])
WAVES = np.arange(1700.0, 11001.0, 30.0)
LATE_DECLINE = 0.015  # mag/day, between the 56Co rate (0.0098) and typical SN Ibc tails


def resample(path: Path) -> np.ndarray:
    phase, wave, flux = np.loadtxt(path, unpack=True)
    phases = np.unique(phase)
    grid = np.zeros((len(phases), len(WAVES)))
    for index, value in enumerate(phases):
        rows = phase == value
        grid[index] = np.interp(WAVES, wave[rows], flux[rows], left=0.0, right=0.0)
    out = np.zeros((len(PHASES), len(WAVES)))
    for column in range(len(WAVES)):
        out[:, column] = np.interp(PHASES, phases, grid[:, column])
    # outside the template: a 5-day linear rise from zero before its first phase, and after its last
    # phase its last spectrum fading at LATE_DECLINE mag/day (radioactive tail), not a cliff to zero
    before = phases[0] > PHASES
    out[before] *= np.clip(1 - (phases[0] - PHASES[before]) / 5.0, 0.0, 1.0)[:, None]
    after = phases[-1] < PHASES
    out[after] *= 10 ** (-0.4 * LATE_DECLINE * (PHASES[after] - phases[-1]))[:, None]
    out /= out.max()  # only the shape matters: each simulated SN is scaled to a drawn peak magnitude
    return np.clip(out, 0.0, None).astype(np.float32)


def main(root: Path) -> None:
    out = Path(__file__).parents[1] / "src/ampel_classifiers/data/cc_templates.npz"
    arrays: dict[str, np.ndarray] = {"phase": PHASES, "wave": WAVES}
    names, types, classes = [], [], []
    for stem, (name, sn_type, label) in TEMPLATES.items():
        folder = "sako" if stem.startswith("S11") else "vincenzi"
        arrays[f"flux_{name}"] = resample(root / "sncosmo/models" / folder / f"{stem}.SED")
        names.append(name)
        types.append(sn_type)
        classes.append(label)
    arrays["names"], arrays["types"], arrays["classes"] = np.array(names), np.array(types), np.array(classes)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
