//! What a run hands back: tables for people, JSON for machines, a chart to look at, and the
//! violations that decide the exit code.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::latency::LatencySummary;

/// A text table: first column left-aligned, the others right-aligned (they are numbers),
/// unless every column is asked to be left-aligned (tables of named values).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub all_left: bool,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            all_left: false,
        }
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// A two-column table of named values.
    pub fn pairs(title: impl Into<String>, pairs: &[(&str, String)]) -> Self {
        let mut table = Self::new(title, &["", ""]);
        table.all_left = true;
        for (name, value) in pairs {
            table.row([(*name).to_owned(), value.clone()]);
        }
        table
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0_usize; columns];
        for row in self.rows.iter().chain([&self.headers]) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(out, "{}", self.title);
        }
        let has_headers = self.headers.iter().any(|h| !h.is_empty());
        let line = |out: &mut String, row: &[String]| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i > 0 {
                    text.push_str("  ");
                }
                if i == 0 || self.all_left {
                    let _ = write!(text, "{cell:<width$}");
                } else {
                    let _ = write!(text, "{cell:>width$}");
                }
            }
            let _ = writeln!(out, "  {}", text.trim_end());
        };
        if has_headers {
            line(&mut out, &self.headers);
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            line(&mut out, &rule);
        }
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }
}

/// What `--plot` draws.
#[derive(Debug, Clone, Default)]
pub enum Chart {
    #[default]
    None,
    /// Latency percentile distributions: `(series name, [(percentile, ms)])`.
    Latency {
        title: String,
        series: Vec<(String, Vec<(f64, f64)>)>,
    },
    /// Measured throughputs next to reference figures.
    Compare {
        title: String,
        /// `(configuration, joins/s)`
        bars: Vec<(String, f64)>,
        /// `(what, TPS)`, drawn as horizontal lines.
        references: Vec<(String, f64)>,
    },
    /// A soak over time: the server's memory and the join rate, faults shaded.
    Timeline {
        title: String,
        /// `(elapsed s, server RSS MiB, joins/s)`, in time order.
        samples: Vec<(f64, f64, f64)>,
        /// `(from s, to s)` of each fault.
        faults: Vec<(f64, f64)>,
        /// End of the warm-up, s (drawn as a vertical line).
        warmup_s: f64,
    },
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    /// Scenario-specific figures, as they appear in `--json`.
    pub result: Value,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
    /// Broken invariants (over-admission, leaked seats): any makes the exit code 3.
    pub violations: Vec<String>,
    /// Parts of the run that could not be carried out: any makes the exit code 1.
    pub errors: Vec<String>,
    pub chart: Chart,
}

impl Report {
    pub fn new(scenario: &'static str, target: impl Into<String>) -> Self {
        Self {
            scenario,
            target: target.into(),
            result: Value::Null,
            tables: Vec::new(),
            notes: Vec::new(),
            violations: Vec::new(),
            errors: Vec::new(),
            chart: Chart::None,
        }
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.errors.is_empty()
    }

    pub fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "target": self.target,
            "ok": self.ok(),
            "violations": self.violations,
            "errors": self.errors,
            "notes": self.notes,
            "result": self.result,
        })
    }

    pub fn human(&self) -> String {
        let mut out = format!(
            "roomgate-load {} against {}\n\n",
            self.scenario, self.target
        );
        for table in &self.tables {
            out.push_str(&table.render());
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for error in &self.errors {
            let _ = writeln!(out, "ERROR: {error}");
        }
        if self.violations.is_empty() {
            out.push_str("invariants: held (no over-admission, no leaked seat)\n");
        } else {
            let _ = writeln!(out, "INVARIANTS BROKEN ({}):", self.violations.len());
            for violation in &self.violations {
                let _ = writeln!(out, "  - {violation}");
            }
        }
        out
    }
}

/// A serializable value for `result`; serialization of plain data cannot fail, and if it ever
/// did the report would say so instead of losing the run.
pub fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({ "serialization_error": e.to_string() }))
}

/// A latency table: one row per kind of latency.
pub fn latency_table(title: &str, rows: &[(&str, LatencySummary)]) -> Table {
    let mut table = Table::new(
        title,
        &[
            "latency (ms)",
            "count",
            "mean",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
        ],
    );
    for (name, s) in rows {
        table.row([
            (*name).to_owned(),
            thousands(s.count),
            ms(s.mean_ms),
            ms(s.p50_ms),
            ms(s.p90_ms),
            ms(s.p99_ms),
            ms(s.p999_ms),
            ms(s.max_ms),
        ]);
    }
    table
}

/// Milliseconds with the precision that matters at their size.
pub fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with thousands separators, or one decimal below 100.
pub fn rate(per_second: f64) -> String {
    if !per_second.is_finite() || per_second < 0.0 {
        return "-".to_owned();
    }
    if per_second < 100.0 {
        format!("{per_second:.1}")
    } else {
        // Rates are far below 2^64; rounding to a whole number is what a reader wants.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = per_second.round() as u64;
        thousands(whole)
    }
}

/// Events per second over `seconds`, 0 when no time passed.
pub fn per_second(events: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    // Event counts stay far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let events = events as f64;
    events / seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_to_the_right() {
        let mut table = Table::new("T", &["what", "n"]);
        table.row(["a".to_owned(), "1".to_owned()]);
        table.row(["longer".to_owned(), "1,000".to_owned()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "T");
        assert_eq!(lines[1], "  what        n");
        assert_eq!(lines[2], "  ------  -----");
        assert_eq!(lines[3], "  a           1");
        assert_eq!(lines[4], "  longer  1,000");
    }

    #[test]
    fn pair_tables_have_no_header_line() {
        let text = Table::pairs("", &[("joins", "12".into()), ("leaves", "1,234".into())]).render();
        assert_eq!(text, "  joins   12\n  leaves  1,234\n");
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(rate(12.44), "12.4");
        assert_eq!(rate(2345.6), "2,346");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(ms(0.123), "0.12");
        assert_eq!(ms(42.42), "42.4");
        assert_eq!(ms(1234.5), "1234");
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(per_second(10, 2.0), 5.0);
    }

    #[test]
    fn a_report_is_ok_only_without_violations() {
        let mut report = Report::new("storm", "http://127.0.0.1:1");
        assert!(report.ok());
        assert_eq!(report.json()["ok"], true);
        assert!(report.human().contains("invariants: held"));
        report.violations.push("room r: 3 > 2".into());
        assert!(!report.ok());
        assert_eq!(report.json()["ok"], false);
        assert!(report.human().contains("INVARIANTS BROKEN (1)"));

        let mut report = Report::new("compare", "x");
        report.errors.push("naive/memory did not complete".into());
        assert!(!report.ok());
        assert!(report.human().contains("ERROR: naive/memory"));
    }
}
