"""AMPEL plugin for ZTF alerts: the Avro alert format, the objectId <-> stock id mapping, filters."""

from ampel_ztf.ids import to_stock_id, to_ztf_id

__version__ = "0.1.0"
__all__ = ["to_stock_id", "to_ztf_id"]
