//! Progress bars for long `publish` (from stdin) and `consume` runs, with
//! indicatif, on stderr. Shown only to a person: hidden when stderr is not
//! a terminal (a pipe, a file, a test) or the output is JSON for a
//! program, so that neither ever sees a bar's escape codes. No ticker
//! thread: a bar redraws when its count moves (indicatif limits that to a
//! few times a second).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting `what` (`"published"`, `"consumed"`) towards `total`
/// when there is one, else a spinner with the count and rate. Hidden when
/// `quiet` (JSON output, or a run too short to need one) or stderr is no
/// terminal.
pub(crate) fn bar(what: &str, total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            format!("{{bar:40}} {{pos}}/{{len}} {what}, {{per_sec}}, {{elapsed}}"),
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            format!("{{spinner}} {{pos}} {what}, {{per_sec}}, {{elapsed}}"),
        ),
    };
    // The templates are ours and valid; indicatif's default style is the
    // fallback all the same.
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
