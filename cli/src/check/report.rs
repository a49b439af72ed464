//! What `weft check` prints: one line per check, grouped by category, and whether any failed.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Works now, needs attention soon (a CA expiring within 30 days).
    Warn,
    Fail,
}

#[derive(Debug, Default)]
pub struct Report {
    text: String,
    failures: usize,
    warnings: usize,
}

impl Report {
    pub fn category(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "{name}");
    }

    pub fn pass(&mut self, line: impl AsRef<str>) {
        self.line(Outcome::Pass, line.as_ref());
    }

    pub fn warn(&mut self, line: impl AsRef<str>) {
        self.line(Outcome::Warn, line.as_ref());
    }

    pub fn fail(&mut self, line: impl AsRef<str>) {
        self.line(Outcome::Fail, line.as_ref());
    }

    pub fn line(&mut self, outcome: Outcome, line: &str) {
        let mark = match outcome {
            Outcome::Pass => "ok  ",
            Outcome::Warn => {
                self.warnings += 1;
                "warn"
            }
            Outcome::Fail => {
                self.failures += 1;
                "FAIL"
            }
        };
        let _ = writeln!(self.text, "  [{mark}] {line}");
    }

    pub fn failed(&self) -> bool {
        self.failures > 0
    }

    /// The whole report with a summary line.
    pub fn finish(mut self) -> String {
        let _ = match (self.failures, self.warnings) {
            (0, 0) => writeln!(self.text, "\nall checks passed"),
            (0, w) => writeln!(self.text, "\nall checks passed, {w} warning(s)"),
            (f, w) => writeln!(self.text, "\n{f} check(s) failed, {w} warning(s)"),
        };
        self.text
    }
}
