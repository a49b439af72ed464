//! Tables as `kubectl get` prints them: a header in capitals, columns left-aligned and padded to
//! their widest cell with three spaces between, `-` where there is no value.

/// Lines of `rows` under `header`, aligned.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `99.50%`, or `-` without requests.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0))
}

/// `12.35rps`.
pub fn rps(rate: f64) -> String {
    format!("{rate:.2}rps")
}

/// `0.45ms` below 10 ms, `120ms` above; `-` without requests.
pub fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "-".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.2}ms"),
        Some(ms) => format!("{ms:.0}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_their_widest_cell() {
        let rows = vec![
            vec!["demo".to_owned(), "web".to_owned(), "-".to_owned()],
            vec![
                "production".to_owned(),
                "hello".to_owned(),
                "99.50%".to_owned(),
            ],
        ];
        assert_eq!(
            render(&["NAMESPACE", "NAME", "SUCCESS"], &rows),
            "NAMESPACE    NAME    SUCCESS\ndemo         web     -\nproduction   hello   99.50%\n"
        );
        assert_eq!(percent(Some(0.995)), "99.50%");
        assert_eq!(millis(Some(0.4567)), "0.46ms");
        assert_eq!(millis(Some(120.4)), "120ms");
        assert_eq!(rps(3.0), "3.00rps");
    }
}
