#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for the tests: listens on 127.0.0.1:PORT,
accepts POST /v1/traces (application/x-protobuf ExportTraceServiceRequest,
decoded with the opentelemetry-proto package; no project code), and appends
one JSON line per span to FILE:
{"trace_id", "span_id", "parent_span_id", "name", "kind", "service", "attributes"}.

usage: otlp_receiver.py PORT FILE
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver(BaseHTTPRequestHandler):
    output = None

    def do_POST(self):
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as error:
            self.send_error(400, f"not an ExportTraceServiceRequest: {error}")
            return
        lines = []
        for resource_spans in request.resource_spans:
            resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(
                        json.dumps(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": span.kind,
                                "service": resource.get("service.name"),
                                "attributes": {a.key: value_of(a.value) for a in span.attributes},
                            }
                        )
                    )
        with open(Receiver.output, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    port, Receiver.output = int(sys.argv[1]), sys.argv[2]
    open(Receiver.output, "a").close()
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
