"""ampel-plugin-sncosmo: sncosmo light-curve fits as an AMPEL T2 unit (`ampel_sncosmo.fit.T2SNCosmoFit`).

Kept empty of imports: ``ampel config build`` imports every plugin, and sncosmo takes about a second.
"""
