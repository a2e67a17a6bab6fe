#!/usr/bin/env python3
"""An auditor's independent check of a signed Muckard audit report.

    python3 scripts/verify_report.py REPORT.json PUBLIC_KEY_HEX

It uses no project code: the report's `content` is put in its RFC 8785
(JCS) canonical form with the `jcs` package, its SHA-256 must equal
`digest.value`, and `signature.value` must be a valid Ed25519 signature of
those bytes by PUBLIC_KEY_HEX (the key published at GET /api/v1/audit/keys
or by `muckard keys public`), checked with `cryptography`. Exit status 0
when both hold, 1 when either does not, 2 when the file cannot be read.
Checking the content against the log is `muckard-replay verify-export`'s
job; this proves the report is the one the key's holder signed.
"""
import hashlib
import json
import sys

import jcs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as handle:
            report = json.load(handle)
        content = report["content"]
        digest = report["digest"]["value"]
        signature = report["signature"]
        public_key = bytes.fromhex(argv[2].strip())
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"cannot read the report: {error}", file=sys.stderr)
        return 2
    canonical = jcs.canonicalize(content)
    problems = []
    if hashlib.sha256(canonical).hexdigest() != digest:
        problems.append("digest: the content does not hash to digest.value")
    if signature.get("algorithm") != "ed25519":
        problems.append(f"signature: unknown algorithm {signature.get('algorithm')!r}")
    if signature.get("public_key", "").lower() != public_key.hex():
        problems.append("signature: made with a key other than the published one")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            bytes.fromhex(signature.get("value", "")), canonical
        )
    except (InvalidSignature, ValueError):
        problems.append("signature: does not verify with the published key")
    for problem in problems:
        print(f"PROBLEM {problem}")
    if problems:
        return 1
    print(f"ok: {len(canonical)} canonical bytes, sha256 {digest}, signed by {public_key.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
