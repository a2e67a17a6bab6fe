#!/usr/bin/env python3
"""Recompute every hash of the Muckard event log with nothing but psql's
output and hashlib, as ARCHITECTURE.md specifies it.

    python3 scripts/verify_chain.py postgres://postgres@127.0.0.1/muckard

Exits 0 when every stream's chain holds, 1 naming each broken row.
"""
import hashlib
import subprocess
import sys

QUERY = r"""
COPY (
  SELECT aggregate_type, aggregate_id, sequence::text, event_type, event_version,
         payload::text, metadata::text, event_id::text, global_position::text,
         to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
         prev_hash, hash
    FROM events ORDER BY aggregate_type, aggregate_id, sequence
) TO STDOUT WITH (FORMAT csv)
"""


def netstring(field: str) -> bytes:
    data = field.encode("utf-8")
    return str(len(data)).encode() + b":" + data + b","


def main() -> int:
    import csv
    import io

    url = sys.argv[1] if len(sys.argv) > 1 else "postgres://postgres@127.0.0.1/muckard"
    out = subprocess.run(["psql", url, "-Atc", QUERY], check=True, capture_output=True).stdout
    broken = 0
    previous = {}
    for row in csv.reader(io.StringIO(out.decode("utf-8"), newline="")):
        stream = (row[0], row[1])
        sequence = int(row[2])
        expected_prev, expected_seq = previous.get(stream, ("0" * 64, 0))
        fields = row[:10]
        digest = hashlib.sha256(b"".join(netstring(f) for f in [expected_prev] + fields)).hexdigest()
        problems = []
        if sequence != expected_seq + 1:
            problems.append(f"sequence {sequence} follows {expected_seq}")
        if row[10] != expected_prev:
            problems.append("prev_hash does not match the previous row")
        if row[11] != digest:
            problems.append("hash does not match the row's contents")
        if problems:
            broken += 1
            print(f"{stream[0]}/{stream[1]} sequence {sequence}: {'; '.join(problems)}")
        previous[stream] = (row[11], sequence)
    print(f"{sum(1 for _ in previous)} streams checked, {broken} broken rows")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
