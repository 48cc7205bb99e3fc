"""The alert message tradewatch publishes to NATS: a strict, versioned JSON schema.

Version 1 (``schema_version: 1``) is what the relay publishes and ``alerts tail`` reads.
The schema refuses anything malformed or oversized: unknown fields, types or severities,
a title over 200 characters, a text over 4000, more than 100 causes, or a message whose
JSON exceeds 64 KiB. :meth:`AlertMessage.for_alert` fits a recorded alert into those limits
(see ``docs/alerts.md``). ``docs/alert-schema.json`` is generated from this model:
``python -m infrastructure.alert_message > docs/alert-schema.json``.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from domain.alert import AlertType, Severity
from projections.facts import Fact, plain

SCHEMA_VERSION: Literal[1] = 1
SUBJECT_PREFIX = "tradewatch.alerts"
MAX_TITLE = 200
MAX_TEXT = 4000
MAX_CAUSES = 100
MAX_BYTES = 64 * 1024
ELLIPSIS = "…"
TOO_LARGE = "message_too_large"


class AlertMessage(BaseModel):
    """One alert as published on ``tradewatch.alerts.<type>.<severity>``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="TradewatchAlert",
        json_schema_extra={
            "description": "A tradewatch alert (schema version 1). The whole JSON document is "
            f"at most {MAX_BYTES} bytes. Published to JetStream stream TRADEWATCH_ALERTS on "
            "subject tradewatch.alerts.<type>.<severity> with header Nats-Msg-Id = id."
        },
    )

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this schema; a change is a new version."
    )
    id: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9]+$",
        description="The alert event's id, <alert uuid>:<version>; also the Nats-Msg-Id header. "
        "The same alert always has the same id.",
    )
    type: AlertType = Field(description="Which of the six alert types.")
    severity: Severity = Field(description="How loud the alert is.")
    time: AwareDatetime = Field(
        description="When the alert's cause happened (ISO 8601 with offset)."
    )
    title: str = Field(min_length=1, max_length=MAX_TITLE, description="One line for people.")
    text: str = Field(
        max_length=MAX_TEXT, description="The body; for signals, the copy-paste block."
    )
    data: dict[str, Any] = Field(description="Machine-readable figures; keys depend on the type.")
    correlation_id: str = Field(
        min_length=1, max_length=200, description="The correlation (the signal's id, or schedule)."
    )
    causes: list[str] = Field(
        max_length=MAX_CAUSES, description="Ids of the events (or clock ticks) that caused it."
    )
    truncated: bool = Field(
        default=False,
        description="True when the text, causes or data were cut to fit the limits; the whole "
        "alert is in the event store (tradewatch alerts --json).",
    )
    _payload: bytes = PrivateAttr(default=b"")

    @model_validator(mode="after")
    def _fits(self) -> Self:
        payload = self.__pydantic_serializer__.to_json(self)
        if len(payload) > MAX_BYTES:
            raise PydanticCustomError(
                TOO_LARGE,
                "the message is {size} bytes of JSON, over the {limit}-byte limit",
                {"size": len(payload), "limit": MAX_BYTES},
            )
        self._payload = payload
        return self

    @property
    def subject(self) -> str:
        """``tradewatch.alerts.<type>.<severity>``."""
        return f"{SUBJECT_PREFIX}.{self.type.value}.{self.severity.value}"

    def encode(self) -> bytes:
        """The JSON payload (validated against the limits when the message was built)."""
        return self._payload

    @classmethod
    def decode(cls, payload: bytes) -> AlertMessage:
        """Parse and validate a received payload (``ValidationError`` if it is not one)."""
        return cls.model_validate_json(payload)

    @classmethod
    def for_alert(cls, fact: Fact) -> AlertMessage:
        """The message for a recorded ``Alert.Raised`` event, fitted into the limits.

        An overlong title or text is cut (ending in "…"), extra causes dropped, and if the
        message is still over 64 KiB its ``data`` is left out; each sets ``truncated``.
        Anything else the schema refuses raises ``ValidationError``.
        """
        s = fact.state
        title, text, causes = str(s["title"]), str(s["text"]), list(s["causes"])
        truncated = len(title) > MAX_TITLE or len(text) > MAX_TEXT or len(causes) > MAX_CAUSES
        fields: dict[str, Any] = {
            "id": fact.event_id,
            "type": s["type"],
            "severity": s["severity"],
            "time": fact.business_time,
            "title": _cut(title, MAX_TITLE),
            "text": _cut(text, MAX_TEXT),
            "data": plain(s["data"]),
            "correlation_id": s["correlation_id"],
            "causes": causes[:MAX_CAUSES],
            "truncated": truncated,
        }
        try:
            return cls.model_validate(fields)
        except ValidationError as e:
            if not any(err["type"] == TOO_LARGE for err in e.errors()):
                raise
        return cls.model_validate({**fields, "data": {}, "truncated": True})


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + ELLIPSIS


def json_schema() -> dict[str, Any]:
    """The JSON Schema of version 1 (``docs/alert-schema.json``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **AlertMessage.model_json_schema(),
    }


def one_line(error: ValidationError) -> str:
    """A validation error as one line: each problem as ``field: message``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
        for err in error.errors()
    )


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
