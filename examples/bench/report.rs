//! Measuring runs and printing them: the table for people, JSON lines for
//! programs, and the change against an earlier JSON run (`--compare`).
//!
//! Every rate row is the median of its runs with the spread of the runs
//! (slowest to fastest, as a share of the median): a row whose spread is
//! over [`WIDE_SPREAD`] is marked, since its median says little.
//!
//! A row may also carry paired ratios: each of its runs against the
//! baseline run made right next to it. On a machine whose speed swings
//! between runs, a ratio of medians can pair a fast run with a slow one;
//! a paired ratio cannot, so its median and its worst pair are what such a
//! bench decides on.

use std::collections::HashMap;
use std::time::Duration;

/// A spread (fastest minus slowest run, over the median) above this marks
/// a row as unsteady.
pub const WIDE_SPREAD: f64 = 0.30;

/// One measured case.
pub struct Row {
    pub case: String,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// The slowest and the fastest run's rate.
    pub min_msgs_per_s: f64,
    pub max_msgs_per_s: f64,
    pub runs: usize,
    /// The baseline case this row is compared with, and its rate; `None`
    /// for a row that is itself a baseline.
    pub baseline: Option<(String, f64)>,
    /// Per run, the baseline run's duration over this run's (this row's
    /// rate over the baseline's, pair by pair); empty when not paired.
    pub pairs: Vec<f64>,
}

impl Row {
    /// The median paired ratio when the runs were paired, else the median
    /// rate over the baseline's median rate.
    pub fn ratio(&self) -> Option<f64> {
        if !self.pairs.is_empty() {
            let mut sorted = self.pairs.clone();
            sorted.sort_by(f64::total_cmp);
            return Some(sorted[sorted.len() / 2]);
        }
        self.baseline
            .as_ref()
            .map(|(_, rate)| self.msgs_per_s / rate)
    }

    /// The worst paired ratio, when the runs were paired.
    pub fn min_pair(&self) -> Option<f64> {
        self.pairs.iter().copied().min_by(f64::total_cmp)
    }

    /// (fastest - slowest) / median.
    pub fn spread(&self) -> f64 {
        (self.max_msgs_per_s - self.min_msgs_per_s) / self.msgs_per_s
    }
}

#[derive(Default)]
pub struct Table {
    pub title: String,
    pub rows: Vec<Row>,
    /// Latency cases, printed after the rate rows.
    pub latencies: Vec<LatencyRow>,
    /// Per-call costs in nanoseconds, printed last.
    pub costs: Vec<(String, f64)>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Self {
        Table {
            title: title.into(),
            rows: Vec::new(),
            latencies: Vec::new(),
            costs: Vec::new(),
        }
    }

    /// Adds a baseline row measured from `durations` of `messages` messages
    /// of `size` bytes each.
    pub fn baseline(&mut self, case: &str, messages: usize, size: usize, durations: &[Duration]) {
        self.rows.push(rates(case, messages, size, durations, None));
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
        let baseline = Some((baseline.to_string(), base_rate));
        self.rows
            .push(rates(case, messages, size, durations, baseline));
    }

    /// Adds a row whose run `i` is compared with `baseline_durations[i]`,
    /// a run of the baseline row `baseline` made right next to it.
    pub fn paired(
        &mut self,
        case: &str,
        baseline: &str,
        messages: usize,
        size: usize,
        durations: &[Duration],
        baseline_durations: &[Duration],
    ) {
        self.compared(case, baseline, messages, size, durations);
        if let Some(row) = self.rows.last_mut() {
            row.pairs = baseline_durations
                .iter()
                .zip(durations)
                .map(|(base, ours)| base.as_secs_f64() / ours.as_secs_f64())
                .collect();
        }
    }

    /// Adds a latency row from `samples`; `baseline` names an earlier
    /// latency row to compare the median with (`None` for a baseline).
    #[allow(dead_code)] // used by benches behind features
    pub fn latency(&mut self, case: &str, baseline: Option<&str>, samples: &[Duration]) {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let baseline = baseline.map(|name| {
            let base = self
                .latencies
                .iter()
                .find(|r| r.case == name)
                .expect("the baseline latency row is added first");
            (name.to_string(), base.p50)
        });
        self.latencies.push(LatencyRow {
            case: case.into(),
            samples: sorted.len(),
            p50: at(0.5),
            p99: at(0.99),
            baseline,
        });
    }

    /// Adds a per-call cost of `ns_per_call` nanoseconds.
    pub fn cost(&mut self, case: &str, ns_per_call: f64) {
        self.costs.push((case.into(), ns_per_call));
    }

    pub fn print(&self) {
        println!("{}", self.title);
        println!(
            "{:<44} {:>13} {:>9} {:>13} {:>7} {:>25}",
            "case", "msgs/s", "MB/s", "baseline/s", "ratio", "min-max (spread)"
        );
        let mut unsteady = 0;
        for row in &self.rows {
            let (base, ratio) = match (&row.baseline, row.ratio()) {
                (Some((_, rate)), Some(ratio)) => (format!("{rate:.0}"), format!("{ratio:.2}x")),
                _ => ("(baseline)".to_string(), String::new()),
            };
            let wide = row.spread() > WIDE_SPREAD;
            unsteady += usize::from(wide);
            let spread = format!(
                "{:.0}-{:.0} ({:.0}%{})",
                row.min_msgs_per_s,
                row.max_msgs_per_s,
                row.spread() * 100.0,
                if wide { " !" } else { "" }
            );
            println!(
                "{:<44} {:>13.0} {:>9.1} {:>13} {:>7} {:>25}",
                row.case, row.msgs_per_s, row.mb_per_s, base, ratio, spread
            );
        }
        if unsteady > 0 {
            println!(
                "! {unsteady} rows spread over {:.0}% between runs: their medians say little (a busy machine?)",
                WIDE_SPREAD * 100.0
            );
        }
        self.print_pairs();
        self.print_latencies();
        if !self.costs.is_empty() {
            println!();
            println!("{:<44} {:>13}", "per-call case", "ns/call");
            for (case, ns) in &self.costs {
                println!("{case:<44} {ns:>13.1}");
            }
        }
    }

    /// Each paired row's ratios run by run, then their median and worst.
    fn print_pairs(&self) {
        let paired: Vec<&Row> = self.rows.iter().filter(|r| !r.pairs.is_empty()).collect();
        if paired.is_empty() {
            return;
        }
        println!();
        println!("paired ratios (each run over the baseline run next to it):");
        for row in paired {
            let runs: Vec<String> = row.pairs.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "{:<44} {}  median {:.2}x  min {:.2}x",
                row.case,
                runs.join(" "),
                row.ratio().unwrap_or_default(),
                row.min_pair().unwrap_or_default()
            );
        }
    }

    fn print_latencies(&self) {
        if self.latencies.is_empty() {
            return;
        }
        println!();
        println!(
            "{:<44} {:>8} {:>11} {:>11} {:>13} {:>7}",
            "latency case", "samples", "p50 us", "p99 us", "baseline p50", "ratio"
        );
        for row in &self.latencies {
            let (base, ratio) = match &row.baseline {
                Some((_, p50)) => {
                    let ratio = micros(row.p50) / micros(*p50);
                    let ratio = if ratio >= 0.1 {
                        format!("{ratio:.3}x")
                    } else {
                        format!("{ratio:.1e}x")
                    };
                    (format!("{:.0}", micros(*p50)), ratio)
                }
                None => ("(baseline)".to_string(), String::new()),
            };
            println!(
                "{:<44} {:>8} {:>11.0} {:>11.0} {:>13} {:>7}",
                row.case,
                row.samples,
                micros(row.p50),
                micros(row.p99),
                base,
                ratio
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
                "paired_ratios": row.pairs.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
                "min_ratio": row.min_pair().map(|r| (r * 1000.0).round() / 1000.0),
                "runs": row.runs,
                "min_msgs_per_s": row.min_msgs_per_s.round(),
                "max_msgs_per_s": row.max_msgs_per_s.round(),
                "spread": (row.spread() * 1000.0).round() / 1000.0,
            });
            println!("{line}");
        }
        for row in &self.latencies {
            let line = serde_json::json!({
                "case": row.case,
                "samples": row.samples,
                "p50_us": micros(row.p50).round(),
                "p99_us": micros(row.p99).round(),
                "baseline_p50_us": row.baseline.as_ref().map(|(_, p50)| micros(*p50).round()),
                "baseline_case": row.baseline.as_ref().map(|(case, _)| case),
                "ratio": row.baseline.as_ref().map(|(_, p50)| {
                    (micros(row.p50) / micros(*p50) * 1000.0).round() / 1000.0
                }),
            });
            println!("{line}");
        }
        for (case, ns) in &self.costs {
            let line = serde_json::json!({
                "case": case,
                "ns_per_call": (ns * 10.0).round() / 10.0,
            });
            println!("{line}");
        }
    }
}

/// The row of `case` from its runs' `durations`: the median run's rate,
/// and the slowest and fastest.
fn rates(
    case: &str,
    messages: usize,
    size: usize,
    durations: &[Duration],
    baseline: Option<(String, f64)>,
) -> Row {
    let mut sorted = durations.to_vec();
    sorted.sort();
    let rate = |d: &Duration| messages as f64 / d.as_secs_f64();
    let msgs_per_s = rate(&sorted[sorted.len() / 2]);
    Row {
        case: case.into(),
        msgs_per_s,
        mb_per_s: msgs_per_s * size as f64 / 1e6,
        min_msgs_per_s: sorted.last().map_or(msgs_per_s, rate),
        max_msgs_per_s: sorted.first().map_or(msgs_per_s, rate),
        runs: sorted.len(),
        baseline,
        pairs: Vec::new(),
    }
}

/// Prints, for each case of `new` also in the earlier `--json` output
/// `old`, the change of its rate (or of its p50 latency) and of its ratio.
pub fn compare(new: &Table, old: &str) {
    let old: HashMap<String, serde_json::Value> = old
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| Some((v.get("case")?.as_str()?.to_string(), v)))
        .collect();
    let number =
        |v: &serde_json::Value, field: &str| v.get(field).and_then(serde_json::Value::as_f64);
    let change = |now: f64, before: f64| format!("{:+.1}%", (now / before - 1.0) * 100.0);
    println!("{}: change against the earlier run", new.title);
    println!(
        "{:<44} {:>13} {:>13} {:>9} {:>15}",
        "case", "before", "now", "change", "ratio before-now"
    );
    for row in &new.rows {
        let Some(before) = old.get(&row.case).and_then(|v| number(v, "msgs_per_s")) else {
            println!(
                "{:<44} {:>13} {:>13.0}",
                row.case, "(new case)", row.msgs_per_s
            );
            continue;
        };
        let ratios = match (
            old.get(&row.case).and_then(|v| number(v, "ratio")),
            row.ratio(),
        ) {
            (Some(a), Some(b)) => format!("{a:.2}x -> {b:.2}x"),
            _ => String::new(),
        };
        println!(
            "{:<44} {:>13.0} {:>13.0} {:>9} {:>15}",
            row.case,
            before,
            row.msgs_per_s,
            change(row.msgs_per_s, before),
            ratios
        );
    }
    for row in &new.latencies {
        let now = micros(row.p50);
        match old.get(&row.case).and_then(|v| number(v, "p50_us")) {
            Some(before) => println!(
                "{:<44} {:>10.0} us {:>10.0} us {:>9}",
                row.case,
                before,
                now,
                change(now, before)
            ),
            None => println!("{:<44} {:>13} {:>10.0} us", row.case, "(new case)", now),
        }
    }
}

/// A latency case: the median and 99th percentile of its samples.
pub struct LatencyRow {
    pub case: String,
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    /// The baseline latency case and its median; the ratio is p50 / that.
    pub baseline: Option<(String, Duration)>,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
