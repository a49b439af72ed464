#!/usr/bin/env python3
"""Real programs for weft's end-to-end tests: apps and clients that know nothing about weft.

Each subcommand is one program. Servers print "ready" on stdout once listening; clients print
one JSON line with what they observed and exit non-zero on failure.

  http-server PORT NAME [HOST] HTTP/1.1 app: answers "hello from NAME" and echoes the
                               weft-client-identity header it received; listens on HOST
                               (default 0.0.0.0; "::" for IPv6 and IPv4, "127.0.0.1" for
                               loopback only)
  grpc-server PORT             gRPC (python grpcio) echo: /weft.e2e.Echo/Unary and /Bidi
  grpc-client ADDR COUNT       one unary call, then a bidirectional stream of COUNT messages
  grpc-fault-server PORT       gRPC test.Greeter whose failures are chosen per call by metadata:
                               x-fail-code (a code name) + x-fail-times N + x-key K make the
                               first N calls of Say with key K fail with that code; Count
                               answers how many Say calls key K (the request) has seen
  grpc-fault-call ADDR KEY CODE TIMES
                               one Say call through ADDR with that metadata, then a Count call
                               for KEY: prints the code of the Say call and the count
  grpc-call ADDR METHOD COUNT  COUNT unary calls of METHOD (e.g. /test.Greeter/Say) back to back;
                               prints the code and details of each
  ws-server PORT               WebSocket echo (the `websockets` package)
  ws-client URL COUNT          WebSocket client sending COUNT messages
  echo-server PORT [HOST]      TCP echo, on HOST as for http-server
  echo-client ADDR             sends bytes that are not HTTP, expects them back (ADDR may be
                               [IPv6]:PORT)
  greeter-server PORT          a server-speaks-first protocol: "220 ready" on connect
  greeter-client ADDR          measures how long the greeting takes
"""

import json
import socket
import sys
import time


def ready():
    print("ready", flush=True)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def http_server(port, name, host="0.0.0.0"):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            identity = self.headers.get("weft-client-identity", "none")
            body = f"hello from {name}\nclient-identity: {identity}\npath: {self.path}\n".encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        # The default backlog of 5 drops connection attempts under a burst of parallel requests.
        request_queue_size = 256
        daemon_threads = True
        address_family = family(host)

    server = Server((host, int(port)), Handler)
    ready()
    server.serve_forever()


def grpc_server(port):
    from concurrent import futures

    import grpc

    def unary(request, context):
        return b"unary:" + request

    def bidi(requests, context):
        for message in requests:
            yield b"echo:" + message

    handler = grpc.method_handlers_generic_handler(
        "weft.e2e.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    ready()
    server.wait_for_termination()


def grpc_client(addr, count):
    import grpc

    with grpc.insecure_channel(addr) as channel:
        unary = channel.unary_unary("/weft.e2e.Echo/Unary")
        reply, call = unary.with_call(b"ping", timeout=10)
        initial = dict(call.initial_metadata())
        bidi = channel.stream_stream("/weft.e2e.Echo/Bidi")
        sent = [f"m{i}".encode() for i in range(int(count))]
        replies = list(bidi(iter(sent), timeout=10))
    print(json.dumps({
        "unary": reply.decode(),
        "server_identity": initial.get("weft-server-identity"),
        "bidi": [r.decode() for r in replies],
    }), flush=True)


def grpc_fault_server(port):
    import threading
    from concurrent import futures

    import grpc

    lock = threading.Lock()
    calls = {}

    def say(request, context):
        metadata = dict(context.invocation_metadata())
        key = metadata.get("x-key", "")
        with lock:
            calls[key] = calls.get(key, 0) + 1
            seen = calls[key]
        code = metadata.get("x-fail-code")
        if code and seen <= int(metadata.get("x-fail-times", "1")):
            # abort() sends the status in trailers, as a real server does.
            context.abort(grpc.StatusCode[code.upper().replace("-", "_")], f"scripted {code} #{seen}")
        attempt = metadata.get("weft-attempt", "none")
        return b"hello " + request + f" (call {seen}, attempt {attempt})".encode()

    def count(request, context):
        with lock:
            return str(calls.get(request.decode(), 0)).encode()

    handler = grpc.method_handlers_generic_handler(
        "test.Greeter",
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_unary_rpc_method_handler(count),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready()
    server.wait_for_termination()


def grpc_fault_call(addr, key, code, times):
    import grpc

    metadata = [("x-key", key), ("x-fail-times", times)]
    if code.upper() != "OK":
        metadata.append(("x-fail-code", code))
    result = {"key": key}
    with grpc.insecure_channel(addr) as channel:
        say = channel.unary_unary("/test.Greeter/Say")
        started = time.monotonic()
        try:
            reply = say(b"world", metadata=metadata, timeout=10)
            result.update(code="OK", reply=reply.decode())
        except grpc.RpcError as error:
            result.update(code=error.code().name, details=error.details())
        result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        count = channel.unary_unary("/test.Greeter/Count")
        result["count"] = int(count(key.encode(), timeout=10))
    print(json.dumps(result), flush=True)


def grpc_call(addr, method, count):
    import grpc

    results = []
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary(method)
        for _ in range(int(count)):
            try:
                reply = call(b"world", timeout=10)
                results.append({"code": "OK", "reply": reply.decode(errors="replace")})
            except grpc.RpcError as error:
                results.append({"code": error.code().name, "details": error.details()})
    print(json.dumps({"calls": results}), flush=True)


def ws_server(port):
    import asyncio

    import websockets

    async def echo(connection):
        async for message in connection:
            await connection.send("echo:" + message)

    async def main():
        async with websockets.serve(echo, "0.0.0.0", int(port)):
            ready()
            await asyncio.Future()

    asyncio.run(main())


def ws_client(url, count):
    from websockets.sync.client import connect

    replies = []
    with connect(url, open_timeout=10, close_timeout=2) as connection:
        for i in range(int(count)):
            connection.send(f"m{i}")
            replies.append(connection.recv(timeout=10))
    print(json.dumps({"replies": replies}), flush=True)


def serve_tcp(port, on_connection, host="0.0.0.0"):
    import threading

    listener = socket.create_server(
        (host, int(port)), family=family(host), reuse_port=True, backlog=256
    )
    ready()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=on_connection, args=(conn,), daemon=True).start()


def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def greet(conn):
    with conn:
        conn.sendall(b"220 ready\r\n")
        while data := conn.recv(65536):
            conn.sendall(b"250 " + data)


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def echo_client(addr):
    payload = bytes(range(256)) * 64
    received = b""
    error = None
    with socket.create_connection(split_addr(addr), timeout=10) as conn:
        try:
            conn.sendall(payload)
            while len(received) < len(payload):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionError as e:
            # The far end closed on us: report it like an early end of file.
            error = type(e).__name__
    print(json.dumps({
        "sent": len(payload),
        "received": len(received),
        "echoed_equal": received == payload,
        "error": error,
    }), flush=True)
    sys.exit(0 if received == payload else 1)


def greeter_client(addr):
    started = time.monotonic()
    with socket.create_connection(split_addr(addr), timeout=10) as conn:
        greeting = conn.recv(1024)
        elapsed = time.monotonic() - started
        conn.sendall(b"HELO\r\n")
        reply = conn.recv(1024)
    print(json.dumps({
        "greeting": greeting.decode(),
        "reply": reply.decode(),
        "greeting_ms": round(elapsed * 1000, 1),
    }), flush=True)


COMMANDS = {
    "http-server": http_server,
    "grpc-server": grpc_server,
    "grpc-client": grpc_client,
    "grpc-fault-server": grpc_fault_server,
    "grpc-fault-call": grpc_fault_call,
    "grpc-call": grpc_call,
    "ws-server": ws_server,
    "ws-client": ws_client,
    "echo-server": lambda port, host="0.0.0.0": serve_tcp(port, echo, host),
    "echo-client": echo_client,
    "greeter-server": lambda port: serve_tcp(port, greet),
    "greeter-client": greeter_client,
}

if __name__ == "__main__":
    # grpc_fault_server and grpc-fault-server name the same command.
    command = sys.argv[1].replace("_", "-") if len(sys.argv) > 1 else None
    if command not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[command](*sys.argv[2:])
