#!/usr/bin/env python3
"""One gRPC unary call from a real gRPC client (grpcio), to prove a benchmark path carries gRPC.

Usage: grpc_check.py HOST:PORT METHOD REQUEST_HEX EXPECTED_RESPONSE_HEX

Calls METHOD (e.g. /bench.Echo/Unary) over HTTP/2 cleartext with the raw request bytes (no
protobuf stubs: the bytes are the serialized message) and a 5 s deadline. Exits 0 when the status
is OK and the response bytes are the expected ones; otherwise says what arrived and exits 1.
grpcio only reports OK when the answer carried `grpc-status: 0` (in the trailers, here), so this
also proves the trailers crossed the path.
"""

import sys

import grpc


def main():
    target, method, request_hex, expected_hex = sys.argv[1:5]
    request, expected = bytes.fromhex(request_hex), bytes.fromhex(expected_hex)
    # No proxy from the environment: the call must take the path under test.
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        call = channel.unary_unary(method)
        try:
            response, info = call.with_call(request, timeout=5)
        except grpc.RpcError as e:
            print(f"gRPC call {method} on {target} failed: {e.code()} {e.details()!r}")
            return 1
    if info.code() != grpc.StatusCode.OK or response != expected:
        print(f"gRPC call {method} on {target}: status {info.code()}, response {response.hex()} "
              f"(expected OK and {expected_hex})")
        return 1
    print(f"gRPC call {method} on {target}: OK, {len(response)} bytes as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
