#!/usr/bin/env python3
"""A server-sent-events client for the tests (tests/messaging/live.rs,
tests/gateway): httpx for HTTP, httpx-sse for the event-stream parsing, no
project code.

    sse_client.py URL --token TOKEN [--last-event-id ID] [--seconds S]
                  [--count N]

Prints one JSON object per line, flushed at once: first
{"open": status, "content_type": ...} when the response headers arrive,
then {"id", "event", "data", "received_at"} for every event (received_at:
Unix seconds, float), and exits after --count events or --seconds, or when
the server ends the stream ({"closed": true}). A non-200 answer is
{"open": status, "body": ...} and exit status 1.
"""

import argparse
import json
import sys
import time

import httpx
from httpx_sse import connect_sse


def emit(record):
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--last-event-id")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()

    headers = {"authorization": f"Bearer {args.token}"}
    if args.last_event_id:
        headers["last-event-id"] = args.last_event_id
    deadline = time.monotonic() + args.seconds
    # The read timeout bounds each wait for a byte; heartbeats keep an idle
    # stream talking, so only a dead server trips it.
    timeout = httpx.Timeout(connect=5.0, read=args.seconds, write=5.0, pool=5.0)
    seen = 0
    with httpx.Client(timeout=timeout) as client:
        try:
            with connect_sse(client, "GET", args.url, headers=headers) as source:
                response = source.response
                if response.status_code != 200:
                    response.read()
                    emit({"open": response.status_code, "body": response.text})
                    return 1
                emit(
                    {
                        "open": response.status_code,
                        "content_type": response.headers.get("content-type"),
                    }
                )
                for event in source.iter_sse():
                    # As a browser's EventSource: an event with no data is
                    # not dispatched (httpx-sse hands one over for a
                    # heartbeat comment once an id was seen).
                    if event.data == "":
                        continue
                    emit(
                        {
                            "id": event.id,
                            "event": event.event,
                            "data": event.data,
                            "received_at": time.time(),
                        }
                    )
                    seen += 1
                    if (args.count and seen >= args.count) or time.monotonic() > deadline:
                        return 0
                emit({"closed": True})
        except httpx.ReadTimeout:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
