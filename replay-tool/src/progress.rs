//! Progress bars on stderr with rate and ETA, hidden when stderr is not a
//! terminal (a pipe, a file, a test).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use projections::audit::Progress;

pub struct Bar {
    bar: Mutex<ProgressBar>,
    visible: bool,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            bar: Mutex::new(ProgressBar::hidden()),
            visible: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        let bar = if self.visible {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(phase.to_string());
        if let Ok(mut current) = self.bar.lock() {
            *current = bar;
        }
    }

    fn advance(&self, units: u64) {
        if let Ok(bar) = self.bar.lock() {
            bar.inc(units);
        }
    }

    fn finish(&self) {
        if let Ok(bar) = self.bar.lock() {
            bar.finish_and_clear();
        }
    }
}
