//! The job format: the shipped jobs load, and a mistake in a job file is
//! reported with the file, the line and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lorebot::build::ConfigBase;
use lorebot::job;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_jobs_load() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root().join("jobs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let plan = job::load(&path).unwrap_or_else(|e| panic!("{e}"));
            names.push(plan.name);
        }
    }
    names.sort();
    assert_eq!(names, ["ceph-fscache", "filemap-stall", "lkdtm-softlockup"]);
}

#[test]
fn lkdtm_job_plan() {
    let plan = job::load(&root().join("jobs/lkdtm-softlockup.yaml")).unwrap();
    assert_eq!(plan.kernel.base, ConfigBase::Tinyconfig);
    let fragments: Vec<PathBuf> = ["vm-base.config", "lkdtm.config"]
        .iter()
        .map(|f| root().join("kernel-configs").join(f))
        .collect();
    assert_eq!(plan.kernel.fragments, fragments);
    assert_eq!(plan.reproducer.timeout, Duration::from_secs(60));
    assert!(plan.reproducer.script.contains("echo SOFTLOCKUP"));
    assert_eq!((plan.vm.cpus, plan.vm.memory_mib), (2, 512));
    assert_eq!(plan.target.kinds, ["rcu-stall"]);
    assert_eq!(plan.limits.crash_grace, Duration::from_secs(25));
    let home = std::env::var("HOME").unwrap();
    assert_eq!(plan.tree.url, format!("{home}/.cache/lorebot/linux-6.1"));
}

#[test]
fn ceph_job_says_what_it_needs() {
    let plan = job::load(&root().join("jobs/ceph-fscache.yaml")).unwrap();
    assert!(plan.requires.iter().any(|r| r.contains("Ceph cluster")));
    assert!(
        plan.kernel
            .fragments
            .iter()
            .any(|f| f.ends_with("ceph-fscache.config"))
    );
    assert!(
        plan.target
            .titles
            .contains(&"INFO: rcu detected stall in *".to_owned())
    );
}

const GOOD: &str = "\
name: t
tree:
  url: /srv/linux
kernel:
  base: tinyconfig
  fragments: [vm-base.config]
reproducer:
  script: echo hi
  timeout: 30s
limits:
  runs: 5
";

/// Parses `text` as if it were `jobs/t.yaml` and returns the error.
fn error_of(text: &str) -> String {
    match job::parse(&root().join("jobs/t.yaml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_job_parses() {
    let plan = job::parse(&root().join("jobs/t.yaml"), GOOD).unwrap();
    assert_eq!(plan.limits.runs, 5);
    assert_eq!(plan.tree.url, "/srv/linux");
    assert_eq!(plan.github, None);

    let text = GOOD.replace(
        "name: t\n",
        "name: t\ngithub: octo/linux\npatchwork:\n  url: https://patchwork.kernel.org\n  project: linux-mm\n",
    );
    let plan = job::parse(&root().join("jobs/t.yaml"), &text).unwrap();
    assert_eq!(plan.github.as_deref(), Some("octo/linux"));
    let patchwork = plan.patchwork.unwrap();
    assert_eq!(patchwork.url, "https://patchwork.kernel.org");
    assert_eq!(patchwork.project.as_deref(), Some("linux-mm"));
}

#[test]
fn errors_name_file_line_and_field() {
    let cases = [
        (
            GOOD.replace("runs: 5", "runs: 0"),
            "jobs/t.yaml:11: limits.runs: must be at least 1",
        ),
        (
            GOOD.replace("30s", "half a minute"),
            "jobs/t.yaml:9: reproducer.timeout: `half a minute` is not a duration",
        ),
        (
            GOOD.replace("  runs: 5", "  runz: 5"),
            "jobs/t.yaml:11: limits: unknown field `runz`",
        ),
        (
            GOOD.replace("[vm-base.config]", "[nope.config]"),
            "jobs/t.yaml:6: kernel.fragments: no fragment `nope.config`",
        ),
        (
            GOOD.replace("limits:\n  runs: 5\n", "target:\n  kinds: [rcu]\n"),
            "jobs/t.yaml:11: target.kinds: unknown kind `rcu`",
        ),
        (
            GOOD.replace("name: t", "name: a b"),
            "jobs/t.yaml:1: name: `a b` must be",
        ),
        (
            GOOD.replace("  script: echo hi\n", ""),
            "jobs/t.yaml:7: reproducer: needs `script` or `script_file`",
        ),
        (
            GOOD.replace("tree:\n  url: /srv/linux\n", ""),
            "missing field `tree`",
        ),
        ("name: [unclosed".to_owned(), "jobs/t.yaml:1:"),
        (
            GOOD.replace("name: t\n", "name: t\ngithub: linux\n"),
            "jobs/t.yaml:2: github: `linux` is not a repository (owner/name)",
        ),
        (
            GOOD.replace(
                "name: t\n",
                "name: t\npatchwork: {url: patchwork.kernel.org}\n",
            ),
            "jobs/t.yaml:2: patchwork.url: `patchwork.kernel.org` is not an http(s) URL",
        ),
    ];
    for (text, want) in cases {
        let err = error_of(&text);
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}
