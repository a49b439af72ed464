//! How `weft tap` prints: a table row per event (for people), or the event as one JSON line.

use std::io::{self, Write};

use serde_json::Value;

const COLUMNS: [(&str, usize); 12] = [
    ("TIME", 12),
    ("DIR", 3),
    ("METHOD", 6),
    ("AUTHORITY", 22),
    ("PATH", 28),
    ("STATUS", 6),
    ("LATENCY", 9),
    ("SOURCE", 16),
    ("DESTINATION", 16),
    ("ROUTE", 12),
    ("TRIES", 5),
    ("ERROR", 0),
];

pub struct Printer<W: Write> {
    out: W,
    header_written: bool,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            header_written: false,
        }
    }

    pub fn json(&mut self, value: &Value) -> io::Result<()> {
        writeln!(self.out, "{value}")?;
        self.out.flush()
    }

    pub fn row(&mut self, value: &Value) -> io::Result<()> {
        if !self.header_written {
            let names: Vec<String> = COLUMNS.iter().map(|(n, _)| n.to_string()).collect();
            self.write_cells(&names)?;
            self.header_written = true;
        }
        let sidecar = value["sidecar"].as_str().unwrap_or("?");
        if let Some(dropped) = value.get("dropped") {
            writeln!(
                self.out,
                "-- {sidecar} dropped {dropped} events (over the rate, or this reader was slow)"
            )?;
            return self.out.flush();
        }
        let text = |name: &str| value[name].as_str().unwrap_or("-").to_owned();
        let status = match (value["status"].as_u64(), value["grpc_status"].as_u64()) {
            (None, _) => "-".to_owned(),
            (Some(s), None) => s.to_string(),
            (Some(s), Some(g)) => format!("{s}/{g}"),
        };
        let latency = value["latency_ms"]
            .as_f64()
            .map_or("-".to_owned(), |ms| format!("{ms:.1}ms"));
        let direction = match value["direction"].as_str() {
            Some("inbound") => "in",
            Some("outbound") => "out",
            _ => "-",
        };
        let cells = [
            text("time").get(11..23).unwrap_or("-").to_owned(),
            direction.to_owned(),
            text("method"),
            text("authority"),
            text("path"),
            status,
            latency,
            short_identity(value["source"].as_str()),
            short_identity(value["destination"].as_str()),
            text("route"),
            value["attempts"]
                .as_u64()
                .map_or("-".to_owned(), |a| a.to_string()),
            text("weft_error"),
        ];
        self.write_cells(&cells)?;
        self.out.flush()
    }

    fn write_cells(&mut self, cells: &[String]) -> io::Result<()> {
        let mut line = String::new();
        for ((_, width), cell) in COLUMNS.iter().zip(cells) {
            if *width == 0 {
                line.push_str(cell);
                continue;
            }
            let shown = cut(cell, *width);
            line.push_str(&format!("{shown:<width$} "));
        }
        writeln!(self.out, "{}", line.trim_end())
    }
}

/// `spiffe://cluster.local/ns/demo/sa/web` as `web.demo`; others as they are.
fn short_identity(identity: Option<&str>) -> String {
    let Some(identity) = identity else {
        return "-".to_owned();
    };
    let parts: Vec<&str> = identity.split('/').collect();
    match parts.as_slice() {
        ["spiffe:", "", _, "ns", ns, "sa", sa] => format!("{sa}.{ns}"),
        _ => identity.to_owned(),
    }
}

/// At most `width` characters, the last one `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut shown: String = text.chars().take(width - 1).collect();
    shown.push('…');
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_the_event() {
        let mut printer = Printer::new(Vec::new());
        let event = serde_json::json!({
            "time": "2026-12-06T17:00:00.123Z", "direction": "outbound", "method": "GET",
            "authority": "hello.demo:8080", "path": "/hello", "status": 200, "grpc_status": null,
            "latency_ms": 1.25, "source": "spiffe://cluster.local/ns/demo/sa/client",
            "destination": "spiffe://cluster.local/ns/demo/sa/hello", "service": "hello.demo",
            "route": "default", "attempts": 2, "weft_error": null, "trace_id": null,
            "headers": {}, "sidecar": "127.0.0.1:15000"
        });
        printer.row(&event).unwrap();
        printer
            .row(&serde_json::json!({"dropped": 3, "sidecar": "127.0.0.1:15000"}))
            .unwrap();
        let text = String::from_utf8(printer.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME         DIR METHOD"), "{text}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "17:00:00.123",
                "out",
                "GET",
                "hello.demo:8080",
                "/hello",
                "200",
                "1.2ms",
                "client.demo",
                "hello.demo",
                "default",
                "2",
                "-"
            ]
        );
        assert_eq!(
            lines[2],
            "-- 127.0.0.1:15000 dropped 3 events (over the rate, or this reader was slow)"
        );
    }

    #[test]
    fn long_cells_are_cut() {
        assert_eq!(cut("/a/very/long/path", 8), "/a/very…");
        assert_eq!(
            short_identity(Some("spiffe://td/other")),
            "spiffe://td/other"
        );
    }
}
