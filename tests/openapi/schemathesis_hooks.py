"""Schemathesis hooks for tests/openapi/schemathesis.rs (named in
schemathesis.toml).

An `Idempotency-Key` is a promise about every later request with the same
key: repeating it replays the first answer, and reusing it for another
request is a 422 naming `Idempotency-Key` (as the document says). The
generator knows nothing of that and draws the same few keys ("0", "a")
for requests of every operation, so most of its requests with a key would
test the reuse path, whose 422 is right, and nothing else. Each valid key
it draws is made one of its own; a key the document forbids is sent as
drawn, so its refusal is still checked. Replaying and reusing keys is
tested in tests/openapi/conformance/bots.rs and tests/write_path.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers:
        return
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value):
            headers[name] = uuid.uuid4().hex
