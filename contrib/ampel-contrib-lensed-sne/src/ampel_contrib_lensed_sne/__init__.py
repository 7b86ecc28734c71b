"""AMPEL units for the search for gravitationally lensed supernovae in ZTF data"""
