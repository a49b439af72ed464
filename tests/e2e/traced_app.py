#!/usr/bin/env python3
"""An app and a client instrumented with the official OpenTelemetry Python SDK, exporting spans
over OTLP/gRPC: what a mesh's users run, so weft's trace propagation is checked against code
nobody here wrote.

  traced_app.py server --listen 127.0.0.1:0 --service NAME --collector HOST:PORT
      HTTP/1.1 (keep-alive) server; prints "ready PORT" once listening. For every request it
      extracts the W3C trace context from the headers, records a SERVER span named "GET /path",
      and answers 200 (or N for a path /status/N) with JSON: every trace header it saw
      (traceparent, tracestate, b3, x-b3-traceid, x-b3-spanid, x-b3-parentspanid, x-b3-sampled,
      x-b3-flags; null when absent), the path, and its own span's trace_id and span_id.

  traced_app.py client URL [--header K:V]... [--no-inject] [--unsampled]
          --service NAME --collector HOST:PORT
      Records a CLIENT span, injects `traceparent` into a GET of URL (unless --no-inject;
      --unsampled sends a not-sampled context and exports nothing), adds the --header headers
      (after injecting, so they win), flushes the span to the collector and prints one JSON
      line: {"status", "trace_id", "span_id", "body"} (body parsed as JSON when it is).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SCOPE = "weft-tests.traced_app"
TRACE_HEADERS = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
]
PROPAGATOR = TraceContextTextMapPropagator()


def provider(service, collector, batched, sampled=True):
    exporter = OTLPSpanExporter(endpoint=collector, insecure=True, timeout=5)
    # A short batch schedule: spans reach the collector within a few hundred milliseconds.
    processor = (
        BatchSpanProcessor(exporter, schedule_delay_millis=100)
        if batched
        else SimpleSpanProcessor(exporter)
    )
    tracer_provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ALWAYS_ON if sampled else ALWAYS_OFF,
    )
    tracer_provider.add_span_processor(processor)
    return tracer_provider


def hex_ids(span):
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def serve(args):
    tracer_provider = provider(args.service, args.collector, batched=True)
    tracer = tracer_provider.get_tracer(SCOPE)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_request(self):
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(headers.get("content-length", "0") or "0")
            if length:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            status = 200
            if path.startswith("/status/"):
                try:
                    status = int(path.rsplit("/", 1)[1])
                except ValueError:
                    status = 400
            parent = PROPAGATOR.extract(carrier=headers)
            span = tracer.start_span(
                f"{self.command} {path}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": self.command,
                    "url.path": path,
                    "network.protocol.version": self.request_version.removeprefix("HTTP/"),
                    "server.port": self.server.server_address[1],
                },
            )
            trace_id, span_id = hex_ids(span)
            seen = {name: headers.get(name) for name in TRACE_HEADERS}
            seen.update({"path": self.path, "trace_id": trace_id, "span_id": span_id})
            body = json.dumps(seen).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

        do_GET = handle_request
        do_POST = handle_request

        def log_message(self, *args):
            pass

    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    print(f"ready {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        tracer_provider.shutdown()


def client(args):
    tracer_provider = provider(
        args.service, args.collector, batched=False, sampled=not args.unsampled
    )
    tracer = tracer_provider.get_tracer(SCOPE)
    result = {"status": None, "trace_id": None, "span_id": None, "body": None}
    with tracer.start_as_current_span(
        "GET",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": "GET", "url.full": args.url},
    ) as span:
        result["trace_id"], result["span_id"] = hex_ids(span)
        headers = {}
        if not args.no_inject:
            PROPAGATOR.inject(headers)
        for header in args.header:
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        request = urllib.request.Request(args.url, headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except OSError as error:
            span.set_status(Status(StatusCode.ERROR, str(error)))
            result["error"] = str(error)
            status, raw = None, b""
        span.set_attribute("http.response.status_code", status or 0)
        if status is not None and status >= 400:
            span.set_status(Status(StatusCode.ERROR))
    result["status"] = status
    text = raw.decode("utf-8", "replace")
    try:
        result["body"] = json.loads(text)
    except ValueError:
        result["body"] = text
    tracer_provider.force_flush()
    tracer_provider.shutdown()
    print(json.dumps(result), flush=True)
    return 0 if status is not None else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("server", "client"):
        command = commands.add_parser(name)
        command.add_argument("--service", required=True, help="service.name of the resource")
        command.add_argument("--collector", required=True, help="OTLP/gRPC HOST:PORT")
    commands.choices["server"].add_argument("--listen", default="127.0.0.1:0")
    client_args = commands.choices["client"]
    client_args.add_argument("url")
    client_args.add_argument("--header", action="append", default=[], metavar="K:V")
    client_args.add_argument("--no-inject", action="store_true")
    client_args.add_argument("--unsampled", action="store_true")
    args = parser.parse_args()
    if args.command == "server":
        serve(args)
        return 0
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
