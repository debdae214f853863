//! What counts as "the bug" when the job does not say: what the report in
//! the thread shows.

use crate::console::{self, Options};
use crate::job::Target;
use crate::mail::Mail;

/// The bug as the report shows it, and the sentence that says so in the
/// reply. Stalls are counted by kind (a stall is caught wherever the CPU
/// happens to be, so its title changes from run to run); other crashes
/// by their exact title. `None` when the mail holds no crash report.
pub fn from_report(report: &Mail) -> Option<(Target, String)> {
    let analysis = console::analyze(
        &report.body,
        Options {
            hz: None,
            mail: Some(true),
        },
    );
    let mut target = Target::default();
    let mut shown = Vec::new();
    for c in &analysis.crashes {
        if c.kind.is_stall() {
            let kind = c.kind.as_str().to_owned();
            if !target.kinds.contains(&kind) {
                target.kinds.push(kind);
            }
        } else if !target.titles.contains(&c.title) {
            target.titles.push(c.title.clone());
        }
        if !shown.contains(&c.title) {
            shown.push(c.title.clone());
        }
    }
    if target.is_empty() {
        return None;
    }
    let why = format!(
        "{target}, from the report in the thread (<{}>), which shows: {}",
        report.message_id,
        shown.join("; ")
    );
    Some((target, why))
}
