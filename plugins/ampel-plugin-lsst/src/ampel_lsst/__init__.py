"""AMPEL plugin for Rubin/LSST and ELAsTiCC alerts (see docs/lsst.md).

Import-light on purpose: ``ampel_lsst.plugin`` is imported by every ``ampel`` command.
"""

__version__ = "0.1.0"
