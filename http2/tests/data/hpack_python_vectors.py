#!/usr/bin/env python3
"""Writes hpack_python_vectors.txt: header blocks encoded by python-hyper's `hpack` (pip install
hpack), a real HTTP/2 peer's HPACK that Huffman-codes every literal, and the fields each holds.
weft's decoder reads them back in tests/hpack_python.rs, without python at test time.

Run from this directory after changing a list: python3 hpack_python_vectors.py
"""

import hpack

# A session is one connection: its blocks share one encoder (and, in the test, one decoder).
# A block is a list of fields, (name, value) or (name, value, True) for never indexed, or an
# int: a new SETTINGS_HEADER_TABLE_SIZE for the encoder before the next block.
LONG = "x" * 1000
HUGE = "".join(chr(ord("a") + i % 26) for i in range(5000))  # larger than the table
TRACE = "00-0af7651916cd43dd8448eb211c80319c-{}-01"


def grpc_request(path, span, timeout="1S"):
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "echo.default.svc.cluster.local:8080"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", timeout),
        ("grpc-accept-encoding", "identity,deflate,gzip"),
        ("user-agent", "grpc-go/1.60.1"),
        ("traceparent", TRACE.format(span)),
    ]


SESSIONS = {
    "grpc-requests": [
        grpc_request("/weft.echo.v1.Echo/Say", "b7ad6b7169203331"),
        grpc_request("/weft.echo.v1.Echo/Say", "00f067aa0ba902b7"),
        grpc_request("/weft.echo.v1.Echo/Stream", "53995c3f42cd8ad8", "250m")
        + [("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl", True)],
    ],
    "browser-requests": [
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html?q=%C3%A9t%C3%A9&lang=fr"),
            (":authority", "www.example.com"),
            ("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            ("accept-encoding", "gzip, deflate"),
            ("accept-language", "fr-CH, fr;q=0.9, en;q=0.8"),
            ("cookie", "session=38afes7a8; theme=dark", True),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        ],
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/style.css"),
            (":authority", "www.example.com"),
            ("accept", "text/css,*/*;q=0.1"),
            ("accept-encoding", "gzip, deflate"),
            ("cookie", "session=38afes7a8; theme=dark", True),
            ("x-long", LONG),
        ],
        [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "www.example.com"), ("x-long", LONG)],
    ],
    "responses-and-table-sizes": [
        [(":status", "200"), ("content-type", "application/grpc"), ("date", "Tue, 03 Mar 2026 10:00:00 GMT"), ("server", "weft")],
        [("grpc-status", "0"), ("grpc-message", "")],
        256,
        [(":status", "200"), ("content-type", "application/grpc"), ("server", "weft"), ("x-huge", HUGE)],
        [(":status", "404"), ("server", "weft"), ("set-cookie", "id=a3fWa; Max-Age=2592000; Secure; HttpOnly", True)],
        0,
        4096,
        [(":status", "503"), ("retry-after", "120"), ("grpc-status", "14"), ("grpc-message", "upstream connect error")],
        [(":status", "503"), ("retry-after", "120"), ("grpc-status", "14")],
    ],
    "every-byte": [
        [("x-bytes", bytes(range(256))), ("x-high", bytes(range(128, 256)) * 3), (bytes(range(1, 40)), "")],
        [("x-bytes", bytes(range(256)))],
    ],
}


def escape(data):
    """Bytes outside ! to ~, and %, as %XX: the test's format, one field a line."""
    if isinstance(data, str):
        data = data.encode()
    return "".join(chr(b) if 0x21 <= b <= 0x7E and b != 0x25 else "%{:02X}".format(b) for b in data)


def main():
    lines = [
        "# Written by hpack_python_vectors.py with python hpack {}: run it again, do not edit.".format(hpack.__version__),
        "# session NAME: a new connection (a new decoder, SETTINGS_HEADER_TABLE_SIZE 4096).",
        "# block HEX: a header block; then its fields, `field NAME VALUE` or `never NAME VALUE`",
        "# (sent never indexed), bytes outside ! to ~ and % written %XX.",
    ]
    for name, blocks in SESSIONS.items():
        encoder = hpack.Encoder()
        lines.append("session " + name)
        for block in blocks:
            if isinstance(block, int):
                encoder.header_table_size = block
                continue
            lines.append("block " + encoder.encode(block, huffman=True).hex())
            for field in block:
                kind = "never" if len(field) == 3 and field[2] else "field"
                lines.append("{} {} {}".format(kind, escape(field[0]), escape(field[1])))
    with open("hpack_python_vectors.txt", "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
