//! The bot's results as KCIDB data (schema v5.3), for submission to
//! KernelCI: per finished test, a checkout for the base and one for the
//! base with the series applied (or the pull request's head), a build of
//! each, and a test per run.

use serde_json::{Value, json};

use crate::mail::rfc3339;
use crate::store::{JobDetail, RunRow, Store, StoreError};

const ORIGIN: &str = "lorebot";

/// Where a job's tree comes from, as its job file says.
#[derive(Clone)]
pub struct TreeInfo {
    pub url: String,
    pub branch: Option<String>,
}

/// Every finished test in `store` as one KCIDB document. `web_url` (the
/// queue page) gives log links; `tree` names a job's tree.
pub fn export(
    store: &Store,
    web_url: Option<&str>,
    tree: &dyn Fn(&str) -> Option<TreeInfo>,
) -> Result<Value, StoreError> {
    let (mut checkouts, mut builds, mut tests) = (Vec::new(), Vec::new(), Vec::new());
    let mut add = |tested: &Tested, jobs: &[JobDetail]| {
        for job in jobs.iter().filter(|j| j.state == "done") {
            let repo = tested.repo.clone().or_else(|| tree(&job.job));
            add_job(
                tested,
                repo,
                job,
                web_url,
                &mut checkouts,
                &mut builds,
                &mut tests,
            );
        }
    };
    for id in store.tested_series()? {
        let Some(detail) = store.series_detail(id)? else {
            continue;
        };
        let s = &detail.series;
        let tested = Tested {
            page: web_url.map(|w| format!("{w}/series/{}", s.id)),
            message_id: Some(s.msgid.clone()),
            change: format!("base + \"{}\"", s.subject),
            repo: None,
        };
        add(&tested, &detail.jobs);
    }
    for id in store.tested_pulls()? {
        let Some(detail) = store.pull_detail(id)? else {
            continue;
        };
        let p = &detail.pull;
        let tested = Tested {
            page: web_url.map(|w| format!("{w}/pulls/{}", p.id)),
            message_id: None,
            change: format!("{}#{} \"{}\" ({})", p.repo, p.number, p.title, p.url),
            // The head is in the base repository, whose page the pull
            // request's is under (`.../octo/linux/pull/7`).
            repo: p.url.rsplit_once("/pull/").map(|(repo, _)| TreeInfo {
                url: format!("{repo}.git"),
                branch: Some(p.base_ref.clone()),
            }),
        };
        add(&tested, &detail.jobs);
    }
    Ok(json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    }))
}

/// What a job tested, as its patched checkout describes it.
struct Tested {
    /// Its page on the queue.
    page: Option<String>,
    /// The series' mail.
    message_id: Option<String>,
    /// The change on top of the base, in a line.
    change: String,
    /// Where the commits are, when not the job's tree.
    repo: Option<TreeInfo>,
}

fn add_job(
    tested: &Tested,
    tree: Option<TreeInfo>,
    job: &JobDetail,
    web_url: Option<&str>,
    checkouts: &mut Vec<Value>,
    builds: &mut Vec<Value>,
    tests: &mut Vec<Value>,
) {
    let commit = |arm: &str| {
        job.runs
            .iter()
            .find(|r| r.arm == arm)
            .map(|r| r.commit.clone())
    };
    for arm in ["base", "patched"] {
        let checkout_id = format!("{ORIGIN}:job-{}-{arm}", job.id);
        let mut checkout = json!({
            "id": checkout_id,
            "origin": ORIGIN,
            "start_time": rfc3339(job.created),
            "valid": job.verdict.as_deref() != Some("APPLY FAILED") || arm == "base",
        });
        if let Some(c) = commit(arm).filter(|c| c.len() == 40) {
            checkout["git_commit_hash"] = json!(c);
        }
        if let Some(t) = &tree {
            checkout["git_repository_url"] = json!(t.url);
            if let Some(b) = &t.branch {
                checkout["git_repository_branch"] = json!(b);
            }
        }
        if arm == "patched" {
            // A series applied by lorebot (`git am`): the mail is the source.
            if let Some(m) = &tested.message_id {
                checkout["message_id"] = json!(m);
            }
            checkout["comment"] = json!(tested.change);
        }
        if let Some(p) = &tested.page {
            checkout["log_url"] = json!(p);
        }
        checkouts.push(checkout);

        let build_id = format!("{checkout_id}-build");
        let status = match (arm, job.verdict.as_deref()) {
            ("patched", Some("BUILD FAILED")) => "FAIL",
            ("patched", Some("APPLY FAILED")) => continue,
            _ => "PASS",
        };
        builds.push(json!({
            "id": build_id,
            "checkout_id": checkout_id,
            "origin": ORIGIN,
            "architecture": "x86_64",
            "config_name": job.job,
            "status": status,
        }));
        for run in job.runs.iter().filter(|r| r.arm == arm) {
            tests.push(test(job, run, &build_id, web_url));
        }
    }
}

fn test(job: &JobDetail, run: &RunRow, build_id: &str, web_url: Option<&str>) -> Value {
    let recorded = super::recorded(run);
    let duration = recorded.as_ref().map(|r| r.duration_s);
    let mut t = json!({
        "id": format!("{build_id}-run-{}", run.seq),
        "build_id": build_id,
        "origin": ORIGIN,
        "path": format!("lorebot.{}", job.job.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-', "_")),
        "number": {"value": run.seq},
        // A crash, a hang or a kernel that did not boot is the kernel's
        // failure; QEMU or the host failing says nothing about it.
        "status": match run.outcome.as_str() {
            "clean" => "PASS",
            "infra" => "ERROR",
            _ => "FAIL",
        },
        "start_time": rfc3339(run.recorded - duration.unwrap_or(0.0) as i64),
    });
    if let Some(d) = duration {
        t["duration"] = json!(d);
    }
    if let Some(r) = recorded {
        t["comment"] = json!(r.reason);
    }
    if let Some(w) = web_url {
        t["log_url"] = json!(format!("{w}/runs/{}/log", run.id));
    }
    t
}
