"""The AMPEL plugin of ampel-contrib-lensed-sne: what this package adds to AMPEL.

The entry point in pyproject.toml names this module. Keep it light: every ``ampel`` command imports
it. Units are listed by import path and imported only when used.
"""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_units"]


@hookimpl
def ampel_units() -> list[str]:
    return [
        "ampel_contrib_lensed_sne.t0_filter:LensedSNFilter",
        "ampel_contrib_lensed_sne.t2_colours:T2LensedSNColours",
        "ampel_contrib_lensed_sne.t3_report:T3LensedSNReport",
    ]
