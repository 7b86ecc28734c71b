"""AMPEL catalogues: cross-matching alert positions against astronomical catalogues, host galaxies.

Import-light on purpose: ``ampel_catalogs.plugin`` is imported by every ``ampel`` command.
"""

__version__ = "0.1.0"
__all__: list[str] = []
