//! Measuring runs and printing them: the table for people, JSON lines for
//! programs.

use std::time::Duration;

/// One measured case.
pub struct Row {
    pub case: String,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// The baseline case this row is compared with, and its rate; `None`
    /// for a row that is itself a baseline.
    pub baseline: Option<(String, f64)>,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|(_, rate)| self.msgs_per_s / rate)
    }
}

#[derive(Default)]
pub struct Table {
    pub title: String,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Self {
        Table {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Adds a baseline row measured from `durations` of `messages` messages
    /// of `size` bytes each.
    pub fn baseline(&mut self, case: &str, messages: usize, size: usize, durations: &[Duration]) {
        let (msgs_per_s, mb_per_s) = rates(messages, size, durations);
        self.rows.push(Row {
            case: case.into(),
            msgs_per_s,
            mb_per_s,
            baseline: None,
        });
    }

    /// Adds a row compared with the baseline row named `baseline`.
    pub fn compared(
        &mut self,
        case: &str,
        baseline: &str,
        messages: usize,
        size: usize,
        durations: &[Duration],
    ) {
        let base_rate = self
            .rows
            .iter()
            .find(|r| r.case == baseline)
            .map(|r| r.msgs_per_s)
            .expect("the baseline row is added first");
        let (msgs_per_s, mb_per_s) = rates(messages, size, durations);
        self.rows.push(Row {
            case: case.into(),
            msgs_per_s,
            mb_per_s,
            baseline: Some((baseline.into(), base_rate)),
        });
    }

    pub fn print(&self) {
        println!("{}", self.title);
        println!(
            "{:<44} {:>13} {:>9} {:>13} {:>7}",
            "case", "msgs/s", "MB/s", "baseline/s", "ratio"
        );
        for row in &self.rows {
            let (base, ratio) = match (&row.baseline, row.ratio()) {
                (Some((_, rate)), Some(ratio)) => (format!("{rate:.0}"), format!("{ratio:.2}x")),
                _ => ("(baseline)".to_string(), String::new()),
            };
            println!(
                "{:<44} {:>13.0} {:>9.1} {:>13} {:>7}",
                row.case, row.msgs_per_s, row.mb_per_s, base, ratio
            );
        }
    }

    pub fn print_json(&self) {
        for row in &self.rows {
            let line = serde_json::json!({
                "case": row.case,
                "msgs_per_s": row.msgs_per_s.round(),
                "mb_per_s": (row.mb_per_s * 10.0).round() / 10.0,
                "baseline": row.baseline.as_ref().map(|(_, rate)| rate.round()),
                "baseline_case": row.baseline.as_ref().map(|(case, _)| case),
                "ratio": row.ratio().map(|r| (r * 1000.0).round() / 1000.0),
            });
            println!("{line}");
        }
    }
}

/// Messages and megabytes per second of the median run.
fn rates(messages: usize, size: usize, durations: &[Duration]) -> (f64, f64) {
    let mut sorted = durations.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2].as_secs_f64();
    let msgs_per_s = messages as f64 / median;
    (msgs_per_s, msgs_per_s * size as f64 / 1e6)
}
