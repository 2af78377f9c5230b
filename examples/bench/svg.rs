//! `--svg FILE`: a table's rate rows as a horizontal bar chart, for the
//! README. Each case's bar (its median rate) sits right under its
//! baseline's, as in the table; baselines are grey, the cases compared with
//! them blue and labelled with their ratio, and a line across each bar's
//! end spans the slowest to the fastest run.
//!
//! Drawn with plotters' SVG backend alone: the labels are the SVG's own
//! `<text>`, so no font files or system libraries are needed.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{Row, Table};

/// Pixels per case, and for the title and the axis.
const ROW_HEIGHT: u32 = 34;
const FRAME_HEIGHT: u32 = 110;
const WIDTH: u32 = 1100;
/// Room on the left for the case names.
const NAMES_WIDTH: u32 = 390;

const BASELINE: RGBColor = RGBColor(160, 160, 160);
const CASE: RGBColor = RGBColor(49, 110, 190);

/// Writes `table`'s rate rows to `path` as an SVG bar chart.
pub fn write(table: &Table, path: &Path) -> Result<(), String> {
    let rows = &table.rows;
    let count = rows.len().max(1);
    let height = FRAME_HEIGHT + ROW_HEIGHT * count as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    draw(&root, &table.title, rows).map_err(|e| format!("drawing {}: {e}", path.display()))?;
    root.present()
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    rows: &[Row],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let count = rows.len().max(1);
    let widest = rows
        .iter()
        .map(|r| r.max_msgs_per_s.max(r.msgs_per_s))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(NAMES_WIDTH)
        // Room right of the widest bar for its label.
        // A discrete range holds its end: count segments are 0..=count - 1.
        .build_cartesian_2d(0.0..widest * 1.3, (0..count - 1).into_segmented())?;
    // Row 0 at the top.
    let slot = |i: usize| count - 1 - i;
    let names: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(count)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(s) if *s < count => {
                names.get(count - 1 - s).map_or(String::new(), |n| short(n))
            }
            _ => String::new(),
        })
        .x_desc("messages per second (median run; the line spans slowest to fastest)")
        .x_label_formatter(&|x| rate(*x))
        .label_style(("sans-serif", 13))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, row)| {
        let color = if row.baseline.is_some() {
            CASE
        } else {
            BASELINE
        };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(slot(i))),
                (row.msgs_per_s, SegmentValue::Exact(slot(i) + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(5, 5, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, row)| {
        ErrorBar::new_horizontal(
            SegmentValue::CenterOf(slot(i)),
            row.min_msgs_per_s,
            row.msgs_per_s,
            row.max_msgs_per_s,
            BLACK.stroke_width(1),
            10,
        )
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, row)| {
        let label = match row.ratio() {
            Some(ratio) if row.baseline.is_some() => {
                format!("{}  {ratio:.2}x", rate(row.msgs_per_s))
            }
            _ => format!("{}  baseline", rate(row.msgs_per_s)),
        };
        Text::new(
            label,
            (
                row.max_msgs_per_s.max(row.msgs_per_s) + widest * 0.01,
                SegmentValue::CenterOf(slot(i)),
            ),
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    Ok(())
}

/// A case name that fits the names' column.
fn short(name: &str) -> String {
    const MAX: usize = 52;
    if name.chars().count() <= MAX {
        name.to_string()
    } else {
        let cut: String = name.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// A rate as 14.2M, 812k or 950.
fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.1}M", per_s / 1e6)
    } else if per_s >= 1e4 {
        format!("{:.0}k", per_s / 1e3)
    } else if per_s >= 1e3 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_chart_names_every_case_and_its_ratio() {
        let mut table = Table::new("bench simple");
        let runs = |ms: u64| [ms, ms + 1, ms + 3].map(Duration::from_millis);
        table.baseline("raw crossbeam bounded SPSC", 1_000_000, 100, &runs(70));
        table.paired(
            "SimpleAdapter, 1 instance",
            "raw crossbeam bounded SPSC",
            1_000_000,
            100,
            &runs(140),
            &runs(70),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.svg");
        write(&table, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "bench simple",
            "raw crossbeam bounded SPSC",
            "SimpleAdapter, 1 instance",
            "0.50x",
            "baseline",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(14_234_451.0), "14.2M");
        assert_eq!(rate(81_235.0), "81k");
        assert_eq!(rate(3_387.0), "3.4k");
        assert_eq!(rate(950.0), "950");
        assert!(short(&"x".repeat(80)).chars().count() <= 52);
    }
}
