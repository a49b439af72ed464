#!/usr/bin/env python3
"""An OTLP/gRPC trace receiver for weft's tests, built on the official OpenTelemetry protobuf
definitions (the `opentelemetry-proto` package) and grpcio: a consumer of weft's spans that
nobody here wrote the decoding of.

  otlp_collector.py --listen 127.0.0.1:0 --out FILE

Prints "ready PORT" on stdout once listening (port 0 picks one). Every span received is appended
to FILE as one JSON line, flushed at the end of each export call:

  trace_id (32 hex), span_id (16 hex), parent_span_id (16 hex or ""), name,
  kind ("internal"|"server"|"client"|"producer"|"consumer"|"unspecified"),
  status_code ("unset"|"ok"|"error"), status_message, attributes {key: value},
  resource {key: value} (of the span's ResourceSpans), scope (the instrumentation scope's name),
  events [{name, attributes}], start_unix_nano, end_unix_nano, flags

Attribute values are flattened to JSON: strings, ints, floats and bools as themselves, arrays as
lists, key-value lists as objects, bytes as hex. Each export call also writes one line
"export N spans" on stderr, which the harness counts.
"""

import argparse
import signal
import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: "unspecified",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "internal",
    trace_pb2.Span.SPAN_KIND_SERVER: "server",
    trace_pb2.Span.SPAN_KIND_CLIENT: "client",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "producer",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "consumer",
}

STATUS_CODES = {
    trace_pb2.Status.STATUS_CODE_UNSET: "unset",
    trace_pb2.Status.STATUS_CODE_OK: "ok",
    trace_pb2.Status.STATUS_CODE_ERROR: "error",
}


def value(any_value):
    """An OTLP AnyValue as plain JSON."""
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    if which == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, which)


def attributes(key_values):
    return {kv.key: value(kv.value) for kv in key_values}


def span_line(span, resource, scope):
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "name": span.name,
        "kind": KINDS.get(span.kind, f"unknown({span.kind})"),
        "status_code": STATUS_CODES.get(span.status.code, f"unknown({span.status.code})"),
        "status_message": span.status.message,
        "attributes": attributes(span.attributes),
        "resource": resource,
        "scope": scope,
        "events": [
            {"name": event.name, "attributes": attributes(event.attributes)}
            for event in span.events
        ],
        "start_unix_nano": span.start_time_unix_nano,
        "end_unix_nano": span.end_time_unix_nano,
        "flags": span.flags,
    }


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.calls = 0
        self.spans = 0

    def Export(self, request, context):
        if self.out is None:
            spans = sum(
                len(scope_spans.spans)
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
            )
            with self.lock:
                self.calls += 1
                self.spans += spans
            return trace_service_pb2.ExportTraceServiceResponse()
        lines = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope.name
                for span in scope_spans.spans:
                    lines.append(json.dumps(span_line(span, resource, scope)) + "\n")
        with self.lock:
            self.calls += 1
            self.out.write("".join(lines))
            self.out.flush()
            print(f"export {len(lines)} spans (call {self.calls})", file=sys.stderr, flush=True)
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on")
    parser.add_argument("--out", required=True, help="file to append one JSON line per span to")
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="only count spans (for benchmarks); on exit, print the count to --out",
    )
    args = parser.parse_args()

    out = None if args.count_only else open(args.out, "a", encoding="utf-8")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = TraceService(out)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(args.listen)
    if port == 0:
        sys.exit(f"cannot listen on {args.listen}")
    server.start()
    print(f"ready {port}", flush=True)
    service = servicer
    if args.count_only:
        def report(*_):
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(f"{service.spans} spans in {service.calls} export calls\n")
            sys.exit(0)

        signal.signal(signal.SIGTERM, report)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
