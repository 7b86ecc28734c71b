"""AMPEL classifiers: light-curve features (``light-curve``, flux space, ZTF and LSST bands), trained
models with model cards and digests, per detection-count bin, and the T2 units that run them.

Import-light on purpose: ``ampel_classifiers.plugin`` is imported by every ``ampel`` command.
"""

__version__ = "0.1.0"
__all__: list[str] = []
