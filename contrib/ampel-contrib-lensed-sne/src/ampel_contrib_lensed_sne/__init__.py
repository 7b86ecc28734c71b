"""ampel-contrib-lensed-sne: the search for gravitationally lensed supernovae in ZTF data.

Units: `t0_filter.LensedSNFilter` (T0), `t2_colours.T2LensedSNColours` (tied T2: colours at
t0-7, t0, t0+7 against the seed's cut, host, magnification), `t3_report.T3LensedSNReport` (T3: the
ranked report); `colours` (the interpolations) and `simulate` (lensed and unlensed SNe Ia at ZTF
cadence and noise). Kept empty of imports: ``ampel config build`` imports every plugin.
"""

__version__ = "0.1.0"
__all__: list[str] = []
