"""The ZTF public alert stream as an alert source: `ampel_core.kafka.KafkaSource` with ZTF defaults."""

from __future__ import annotations

from pydantic import Field, model_validator

from ampel_core.kafka import KafkaSource

__all__ = ["PUBLIC_BROKER", "ZTFKafkaSource"]

PUBLIC_BROKER = "public.alerts.ztf.uw.edu:9092"


class ZTFKafkaSource(KafkaSource):
    """ZTF's nightly alert topics ``ztf_<YYYYMMDD>_programid<N>`` (the public stream at the
    University of Washington by default; set ``bootstrap_servers`` for a local broker).

    Without explicit ``topics``, consumes the night ``night`` (YYYYMMDD) or, without one, every
    night's topic of ``programid``. Use a ``group_id`` of your own: offsets are stored per group.
    """

    bootstrap_servers: str = Field(PUBLIC_BROKER, description="Comma-separated host:port list.")
    topics: list[str] = Field(default_factory=list, description="Topic names or '^regex'; default: see night.")
    night: str | None = Field(None, pattern=r"^\d{8}$", description="Night (UTC date YYYYMMDD) to consume.")
    programid: int = Field(1, ge=0, description="ZTF programid of the topics (1: public).")

    @model_validator(mode="after")
    def _default_topics(self) -> ZTFKafkaSource:
        if not self.topics:
            night = self.night or r"\d{8}"
            self.topics = [f"^ztf_{night}_programid{self.programid}$"]
        return self
