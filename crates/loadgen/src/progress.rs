//! The progress bar: drawn on stderr when it is a terminal, hidden otherwise or with `--quiet`,
//! so that logs and `--json` output stay clean.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar counting `len` steps of `unit` (users, members…), or one that is never drawn.
    pub fn new(quiet: bool, len: u64, label: &str) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(len), target);
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }

    /// A bar over a time span, advanced in milliseconds by [`elapsed`](Self::elapsed).
    pub fn timed(quiet: bool, span: Duration, label: &str) -> Self {
        let progress = Self::new(quiet, 0, label);
        progress
            .bar
            .set_length(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        progress.bar.set_style(style);
        progress
    }

    pub fn inc(&self, steps: u64) {
        self.bar.inc(steps);
    }

    pub fn elapsed(&self, elapsed: Duration) {
        self.bar
            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn message(&self, message: String) {
        self.bar.set_message(message);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
