"""What the AsyncAPI document says of the event log (shared/event_log.py): how to read it, from where,
and in which order. asyncapi.py builds the channel from these."""

from typing import Any

from shared.contracts.asyncapi_headers import EVENT
from shared.event_log import EVENT_LOG_NAME, READER_PREFETCH, STREAM_OFFSET, retention_policy
from shared.settings import Settings

DESCRIPTION = (
    f"The stream `{EVENT_LOG_NAME}` (`x-queue-type: stream`), bound to the events exchange with `#`: every event, "
    "kept for the retention of its policy, in the order the relay published it, so each owner's events are in "
    "the order their commands were applied (events of different owners interleave). Read it with your reader "
    "user (`opengovfood bus provision --reader NAME`) from any place: consume with a prefetch (basic.qos) and "
    f"manual acks (the broker refuses a stream consumer without them), the consumer argument `{STREAM_OFFSET}` "
    "picks the start (`x-consumer-arguments`), and each delivery's header of that name is its offset. Keep the "
    "last offset you handled and resume at the next one; deduplicate by `event_id` (at least once). "
    "See docs/consuming.md."
)
CONSUMER_ARGUMENTS = {
    STREAM_OFFSET: {
        "description": (
            "where to start: `first` (the oldest event kept), `last` (the last chunk written), `next` (only new "
            "events; the default), an offset (a delivery's header), or an AMQP timestamp (seconds: the first "
            "chunk written at or after it)"
        ),
        "oneOf": [
            {"type": "string", "enum": ["first", "last", "next"]},
            {"type": "integer", "minimum": 0},
            {"type": "string", "format": "date-time", "description": "sent as an AMQP timestamp (type T)"},
        ],
    },
}
CONSUMER = {"prefetch": {"description": "required (basic.qos)", "example": READER_PREFETCH}, "ack": True}
OFFSET_HEADER = {"type": "integer", "minimum": 0, "description": "set by RabbitMQ: the event's offset in the log"}
HEADERS: dict[str, Any] = EVENT | {
    "properties": EVENT["properties"] | {STREAM_OFFSET: OFFSET_HEADER},
    "required": [*EVENT["required"], STREAM_OFFSET],
}


def retention() -> dict[str, Any]:
    """The retention policy with the default settings (EVENT_LOG_MAX_AGE, EVENT_LOG_MAX_BYTES)."""
    fields = Settings.model_fields
    policy = retention_policy(str(fields["event_log_max_age"].default), int(fields["event_log_max_bytes"].default))
    return policy | {"note": "set by `opengovfood bus provision`, not by the declaration: it changes in place"}
