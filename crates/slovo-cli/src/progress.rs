//! Progress on a terminal for operations that can take a while (an install, a document
//! fetched and ingested, a discovery pass): a spinner with what is happening and the time spent,
//! on stderr, only when stderr is a terminal and the output is not `--json`; otherwise nothing.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Runs `work`, showing `what` with a spinner meanwhile where a person is watching.
pub async fn while_running<T>(what: &str, json: bool, work: impl Future<Output = T>) -> T {
    if json || !std::io::stderr().is_terminal() {
        return work.await;
    }
    let spinner = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    spinner.set_style(style);
    spinner.set_message(what.to_string());
    spinner.enable_steady_tick(Duration::from_millis(100));
    let out = work.await;
    spinner.finish_and_clear();
    out
}
