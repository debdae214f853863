//! Where a verdict goes besides the mail: a check run on a GitHub pull
//! request's head commit, and a check on each patch of a series in a
//! patchwork instance. Both read the same test as the reply does.

pub mod github;
pub mod patchwork;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::console::Crash;
use crate::pipeline::{CommitsOutcome, HeadCrash};
use crate::tree::Tree;
use crate::verdict::protocol::Verdict;

/// How a check run ends, in GitHub's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    Neutral,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Notice,
    Warning,
    Failure,
}

/// A crash pinned to a source line of the tested tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub annotation_level: Level,
    pub title: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_details: Option<String>,
}

/// What a check run says when the test ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub conclusion: Conclusion,
    /// One line: the verdict and the counts.
    pub title: String,
    /// Markdown: the same report as the mail, table included.
    pub summary: String,
    pub annotations: Vec<Annotation>,
}

/// GitHub caps a check run's summary at 65535 characters.
const SUMMARY_MAX: usize = 65_000;
/// And an annotation's raw details at 64 KiB.
const DETAILS_MAX: usize = 60_000;

/// The check run's result for a pull request's test: the conclusion, the
/// report as Markdown, and annotations: at the first compiler error of a
/// head that does not build, and at the guilty source line of each crash
/// of the head's runs (the line a WARNING or BUG names, else the guilty
/// function's definition at `head`).
pub fn report(outcome: &CommitsOutcome, tree: &Tree, head: git2::Oid) -> CheckReport {
    let (conclusion, title) = conclude(outcome);
    let mut summary = String::new();
    let _ = writeln!(summary, "**{title}**\n\n```text");
    summary.push_str(&truncate(&outcome.report, SUMMARY_MAX));
    if !summary.ends_with('\n') {
        summary.push('\n');
    }
    summary.push_str("```\n");
    let runs = outcome.decision.as_ref().map_or(0, |d| d.patched.n);
    let build_error = outcome.build_error.as_ref().and_then(|e| {
        Some(Annotation {
            path: e.file.clone()?,
            start_line: e.line?,
            end_line: e.line?,
            annotation_level: Level::Failure,
            title: "BUILD FAILED".to_owned(),
            message: e.message.clone(),
            raw_details: None,
        })
    });
    let annotations = build_error
        .into_iter()
        .chain(
            outcome
                .head_crashes
                .iter()
                .filter_map(|c| crash_annotation(c, runs, tree, head)),
        )
        .collect();
    CheckReport {
        conclusion,
        title,
        summary,
        annotations,
    }
}

/// An annotation for a crash of the head's runs (`runs` counted), at the
/// line its report names, else at its guilty function's definition at
/// `head`; none when neither is known.
fn crash_annotation(
    HeadCrash { target, crash }: &HeadCrash,
    runs: u32,
    tree: &Tree,
    head: git2::Oid,
) -> Option<Annotation> {
    let (path, line) = source_line(crash).or_else(|| {
        crash
            .guilty_frame
            .as_deref()
            .and_then(|f| tree.definition(head, f))
    })?;
    let (level, aside) = if *target {
        (Level::Failure, "")
    } else {
        (Level::Warning, "; not the bug the job tests")
    };
    Some(Annotation {
        path,
        start_line: line,
        end_line: line,
        annotation_level: level,
        title: crash.title.clone(),
        message: format!(
            "{} in the runs of this commit ({runs} counted runs){aside}",
            crash.title
        ),
        raw_details: Some(truncate(&crash.report, DETAILS_MAX)),
    })
}

/// The conclusion and title of a verdict: success for FIXED or runs
/// where nothing crashed; failure for STILL REPRODUCES, a build or apply
/// failure, or a head that crashes where its base never did; neutral
/// otherwise.
fn conclude(outcome: &CommitsOutcome) -> (Conclusion, String) {
    let rates = outcome.decision.as_ref().map(|d| (d.base, d.patched));
    let with_counts = |what: &str| match rates {
        Some((base, head)) => format!(
            "{what}: base {}/{}, head {}/{}",
            base.k, base.n, head.k, head.n
        ),
        None => what.to_owned(),
    };
    match (outcome.verdict, rates) {
        (Verdict::Fixed, _) => (Conclusion::Success, with_counts("FIXED")),
        (Verdict::StillReproduces | Verdict::ApplyFailed | Verdict::BuildFailed, _) => (
            Conclusion::Failure,
            with_counts(&outcome.verdict.to_string()),
        ),
        (Verdict::Inconclusive, Some((base, head))) if base.k == 0 && head.k > 0 => (
            Conclusion::Failure,
            format!(
                "CRASHES: the head crashed in {}/{} runs, its base in none of {}",
                head.k, head.n, base.n
            ),
        ),
        (Verdict::Inconclusive, Some((base, head)))
            if base.k == 0 && head.k == 0 && outcome.unclean_head_runs == 0 =>
        {
            (
                Conclusion::Success,
                format!("CLEAN: no crash in {} runs of the head", head.n),
            )
        }
        _ => (
            Conclusion::Neutral,
            with_counts(&outcome.verdict.to_string()),
        ),
    }
}

/// The source line a report names itself: `WARNING: CPU: 0 PID: 1 at
/// mm/filemap.c:2661 ...` or `kernel BUG at mm/filemap.c:1542!`.
fn source_line(crash: &Crash) -> Option<(String, u32)> {
    static AT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\bat ((?:[\w.+-]+/)+[\w.+-]+\.[chS]):(\d+)").expect("valid regex")
    });
    let caps = AT.captures(&crash.report)?;
    Some((caps[1].to_owned(), caps[2].parse().ok()?))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... cut]", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Timing;
    use crate::verdict::protocol::Decision;
    use crate::verdict::stats::Rate;

    fn outcome(
        verdict: Verdict,
        base: (u32, u32),
        head: (u32, u32),
        unclean: u32,
    ) -> CommitsOutcome {
        CommitsOutcome {
            verdict,
            detail: String::new(),
            report: String::new(),
            decision: Some(Decision {
                verdict,
                reason: String::new(),
                base: Rate::of(base.0, base.1),
                patched: Rate::of(head.0, head.1),
                p0: None,
                llr: None,
                clean_needed: None,
                fisher_p: 1.0,
            }),
            head_crashes: Vec::new(),
            unclean_head_runs: unclean,
            build_error: None,
            timing: Timing::default(),
        }
    }

    #[test]
    fn a_head_that_does_not_build_is_annotated_at_the_error() {
        let dir = std::env::temp_dir().join(format!("lorebot-checks-{}", std::process::id()));
        git2::Repository::init_bare(&dir).unwrap();
        let tree = Tree::open(&dir).unwrap();
        let outcome = CommitsOutcome {
            decision: None,
            report: "Verdict: BUILD FAILED\n".to_owned(),
            build_error: Some(crate::build::FirstError {
                file: Some("mm/filemap.c".to_owned()),
                line: Some(2733),
                message: "expected ';' before '}' token".to_owned(),
            }),
            ..outcome(Verdict::BuildFailed, (0, 0), (0, 0), 0)
        };
        let report = report(&outcome, &tree, git2::Oid::ZERO_SHA1);
        assert_eq!(report.conclusion, Conclusion::Failure);
        assert_eq!(report.title, "BUILD FAILED");
        assert!(
            report
                .summary
                .contains("```text\nVerdict: BUILD FAILED\n```"),
            "{}",
            report.summary
        );
        assert_eq!(report.annotations.len(), 1);
        let a = &report.annotations[0];
        assert_eq!(
            (a.path.as_str(), a.start_line, a.end_line),
            ("mm/filemap.c", 2733, 2733)
        );
        assert_eq!(a.annotation_level, Level::Failure);
        assert_eq!(a.message, "expected ';' before '}' token");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn conclusions_follow_the_verdict_and_the_runs() {
        let cases = [
            (
                outcome(Verdict::Fixed, (5, 12), (0, 12), 0),
                Conclusion::Success,
                "FIXED: base 5/12, head 0/12",
            ),
            (
                outcome(Verdict::StillReproduces, (3, 6), (2, 2), 2),
                Conclusion::Failure,
                "STILL REPRODUCES: base 3/6, head 2/2",
            ),
            (
                outcome(Verdict::Inconclusive, (0, 12), (4, 12), 4),
                Conclusion::Failure,
                "CRASHES: the head crashed in 4/12 runs, its base in none of 12",
            ),
            (
                outcome(Verdict::Inconclusive, (0, 12), (0, 12), 0),
                Conclusion::Success,
                "CLEAN: no crash in 12 runs of the head",
            ),
            // A hang or another crash is no clean run.
            (
                outcome(Verdict::Inconclusive, (0, 12), (0, 11), 1),
                Conclusion::Neutral,
                "INCONCLUSIVE: base 0/12, head 0/11",
            ),
            (
                outcome(Verdict::Reduced, (9, 12), (3, 20), 3),
                Conclusion::Neutral,
                "REDUCED: base 9/12, head 3/20",
            ),
            (
                outcome(Verdict::Infra, (0, 1), (0, 1), 5),
                Conclusion::Neutral,
                "INFRA: base 0/1, head 0/1",
            ),
            (
                CommitsOutcome {
                    decision: None,
                    ..outcome(Verdict::BuildFailed, (0, 0), (0, 0), 0)
                },
                Conclusion::Failure,
                "BUILD FAILED",
            ),
        ];
        for (outcome, conclusion, title) in cases {
            assert_eq!(conclude(&outcome), (conclusion, title.to_owned()));
        }
    }

    #[test]
    fn reports_that_name_their_source_line() {
        let crash = |report: &str| Crash {
            title: String::new(),
            alt_titles: Vec::new(),
            kind: crate::console::Kind::Warning,
            corrupted: false,
            guilty_frame: None,
            start_line: 1,
            end_line: 1,
            time_s: None,
            frames: Vec::new(),
            stall: None,
            report: report.to_owned(),
        };
        assert_eq!(
            source_line(&crash(
                "WARNING: CPU: 1 PID: 3119 at fs/ceph/caps.c:3227 ceph_put_wrbuffer_cap_refs+0x1c4/0x1d0\n"
            )),
            Some(("fs/ceph/caps.c".to_owned(), 3227))
        );
        assert_eq!(
            source_line(&crash(
                "kernel BUG at mm/filemap.c:1542!\ninvalid opcode: 0000"
            )),
            Some(("mm/filemap.c".to_owned(), 1542))
        );
        assert_eq!(
            source_line(&crash(
                "rcu: INFO: rcu_sched self-detected stall on CPU\nRIP: 0010:filemap_get_read_batch+0x11d/0x2a0\n"
            )),
            None
        );
    }
}
