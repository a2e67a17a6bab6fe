#!/usr/bin/env python3
"""Reads Kafka messages of the ledger's event topics as JSON lines on stdin
({"topic", "key", "headers": {name: text}, "value": text}) and parses each
with the CloudEvents SDK for Python in the Kafka binding's binary mode
(cloudevents.core.bindings.kafka.from_binary_event), then checks that the
CloudEvent says what the message's own headers and envelope say.

Used by tests/kafka (every message the mirror tests read); no project code.
Prints one line per message that fails and exits 1 if any did; prints the
number of messages checked otherwise.
"""

import json
import sys
from datetime import datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event


def check(line: str) -> list[str]:
    message = json.loads(line)
    headers = {name: value.encode() for name, value in message["headers"].items()}
    event = from_binary_event(
        KafkaMessage(headers=headers, key=message["key"].encode(), value=message["value"].encode())
    )
    plain = message["headers"]
    envelope = json.loads(message["value"])
    problems = []

    def expect(what, found, wanted):
        if found != wanted:
            problems.append(f"{what} is {found!r}, expected {wanted!r}")

    expect("specversion", event.get_specversion(), "1.0")
    expect("id", event.get_id(), plain.get("event_id"))
    expect("id", event.get_id(), envelope.get("event_id"))
    expect("type", event.get_type(), envelope.get("event_type"))
    expect("source", event.get_source(), f"/muckard/{envelope.get('aggregate_type')}")
    expect("subject", event.get_subject(), envelope.get("aggregate_id"))
    expect("subject", event.get_subject(), message["key"])
    expect("datacontenttype", event.get_datacontenttype(), "application/json")
    expect("data", event.get_data(), envelope)
    time = event.get_time()
    if time is None or time.utcoffset() is None:
        problems.append(f"time {time!r} is missing or has no offset")
    elif time != datetime.fromisoformat(envelope["recorded_at"].replace("Z", "+00:00")):
        problems.append(f"time {time.isoformat()} differs from recorded_at {envelope['recorded_at']}")
    return [f"{message['topic']} {envelope.get('event_id')}: {p}" for p in problems]


def main() -> int:
    checked = 0
    failures = []
    for line in sys.stdin:
        if not line.strip():
            continue
        checked += 1
        try:
            failures.extend(check(line))
        except Exception as error:  # the SDK refused the message
            failures.append(f"message {checked}: the CloudEvents SDK refused it: {error!r}")
    for failure in failures:
        print(failure)
    if failures:
        return 1
    print(f"{checked} messages are CloudEvents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
