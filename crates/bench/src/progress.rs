//! The progress bar on stderr, drawn only for a person watching a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing when disabled.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar if `enabled` and stderr is a terminal: piped output stays free of escape codes.
    pub(crate) fn new(enabled: bool) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:>11} [{bar:40}] {human_pos}/{human_len} {per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar))
    }

    /// Starts a new phase counting up to `len` (0 for a phase without a count).
    pub(crate) fn phase(&self, name: &'static str, len: u64) {
        if let Some(bar) = &self.0 {
            bar.set_message(name);
            bar.set_length(len);
            bar.reset();
        }
    }

    /// Progress within the phase.
    pub(crate) fn set(&self, position: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(position);
        }
    }

    /// Removes the bar so the summary prints cleanly.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
