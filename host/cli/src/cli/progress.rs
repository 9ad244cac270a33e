//! A progress bar per pass of a chunked run, on a terminal only: in pipes
//! and CI nothing is drawn.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct Bar {
    current: Mutex<Option<(ProgressBar, Instant)>>,
}

impl kernel_host::job::Progress for Bar {
    fn start(&self, pass: &str, file: &Path, bytes: u64) {
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        bar.set_prefix(format!("{pass} {name}"));
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((bar, Instant::now()));
    }

    fn update(&self, bytes: u64, rows: u64) {
        if let Some((bar, started)) = &*self.current.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.set_position(bytes);
            let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{rows} rows, {:.0} rows/s", rate));
        }
    }

    fn finish(&self) {
        if let Some((bar, _)) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }
}
