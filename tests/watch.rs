//! `lorebot watch` end to end: a real public-inbox on loopback serving the
//! demo thread (a bug report with a stall log, and the fix posted in
//! reply), the demo's Linux 6.1 tree, real builds and QEMU runs, replies
//! in a maildir outbox; then a second pass, and a watch killed mid-job.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One test at a time: they share the demo tree's worktree and two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const FIX_ID: &str = "20240729090000-filemap-private-2-v1@example.org";

fn demo_data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/demo-data")
        .join(file)
}

struct Bot {
    dir: PathBuf,
    config: PathBuf,
    _lore: support::Lore,
}

impl Bot {
    /// A lore with the demo thread, and a config following it with the
    /// demo job (its text changed by `job_edits`).
    fn new(name: &str, job_edits: &[(&str, &str)]) -> Bot {
        Bot::with_mails(
            name,
            &[demo_data("report.eml"), demo_data("fix.patch")],
            job_edits,
        )
    }

    fn with_mails(name: &str, mails: &[PathBuf], job_edits: &[(&str, &str)]) -> Bot {
        let dir = support::tempdir(name);
        let lore = support::Lore::start_empty(name, "demo", mails);
        let job = support::demo_job(&dir, job_edits);
        let config = dir.join("watch.yaml");
        std::fs::write(
            &config,
            format!(
                "lore: {}\nlists:\n  demo: demo@example.org\njobs: [{}]\n\
                 from: lorebot <bot@example.org>\ndata_dir: data\nwork_dir: {}\n\
                 deliver:\n  maildir: outbox\nbacklog: all\n",
                lore.url,
                job.display(),
                support::cache_dir().join("test-data").display()
            ),
        )
        .unwrap();
        Bot {
            dir,
            config,
            _lore: lore,
        }
    }

    fn lorebot(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lorebot"));
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("LOREBOT_ACCEL", "tcg");
        c
    }

    /// `lorebot watch --once`: its stderr.
    fn watch_once(&self) -> String {
        let out = self
            .lorebot(&["watch", "--once"])
            .output()
            .expect("lorebot runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        println!("{stderr}");
        assert!(
            out.status.success(),
            "lorebot watch --once failed: {stderr}"
        );
        stderr
    }

    fn status(&self) -> Vec<Value> {
        let out = support::run(&mut self.lorebot(&["status", "--json"]));
        serde_json::from_slice(&out).expect("status --json is JSON")
    }

    /// The runs recorded so far (none before the database exists).
    fn runs_recorded(&self) -> u64 {
        if !self.dir.join("data/lorebot.sqlite3").is_file() {
            return 0;
        }
        self.status().first().map_or(0, |j| {
            j["base_runs"].as_u64().unwrap() + j["patched_runs"].as_u64().unwrap()
        })
    }

    /// The mails in the outbox.
    fn outbox(&self) -> Vec<lorebot::mail::Mail> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("outbox/new")) else {
            return Vec::new();
        };
        entries
            .map(|e| {
                let raw = std::fs::read(e.unwrap().path()).unwrap();
                lorebot::mail::Mail::parse(&raw, 1 << 20).unwrap()
            })
            .collect()
    }
}

#[test]
fn fix_posted_on_the_list_gets_one_fixed_reply() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bot = Bot::new("watch-fixed", &[]);
    let log = bot.watch_once();
    assert!(
        log.contains("demo: 1 job(s) queued for filemap-stall"),
        "{log}"
    );

    let sent = bot.outbox();
    assert_eq!(sent.len(), 1, "one reply");
    let mail = &sent[0];
    assert_eq!(
        mail.subject,
        "Re: [PATCH] mm/filemap: don't busy-loop on folios marked PG_private_2"
    );
    assert_eq!(mail.in_reply_to.as_deref(), Some(FIX_ID));
    assert_eq!(mail.to[0].email, "fixer@example.org");
    assert!(
        mail.cc.iter().any(|a| a.email == "demo@example.org"),
        "the list is Cc'd: {:?}",
        mail.cc
    );
    let body = String::from_utf8_lossy(&mail.body);
    assert!(
        body.contains("Counted as the bug: kind rcu-stall, from the report"),
        "{body}"
    );
    assert!(body.contains("Verdict: FIXED"), "{body}");
    assert!(body.contains("filemap_get_read_batch ("), "{body}");
    // The kernel's CONFIG_HZ turns the stall's jiffies into seconds.
    let longest = body
        .lines()
        .find(|l| l.starts_with("longest stall"))
        .unwrap_or_default();
    assert!(
        longest.contains(" s (") && longest.contains("jiffies, HZ=250)"),
        "{body}"
    );
    assert!(
        body.trim_end()
            .ends_with("Tested-by: lorebot <bot@example.org>"),
        "{body}"
    );

    let jobs = bot.status();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job["state"], "done");
    assert_eq!(job["verdict"], "FIXED");
    assert_eq!(job["reply"], "sent");
    let runs = (job["base_runs"].clone(), job["patched_runs"].clone());
    assert!(job["timing"]["guest_s"].as_f64().unwrap() > 0.0, "{job}");

    // Nothing new on the list: nothing queued, nothing sent.
    let log = bot.watch_once();
    assert!(log.contains("demo: 0 new mail(s)"), "{log}");
    assert!(!log.contains("queued"), "{log}");
    assert_eq!(bot.outbox().len(), 1, "no second reply");
    let jobs = bot.status();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (
            jobs[0]["base_runs"].clone(),
            jobs[0]["patched_runs"].clone()
        ),
        runs
    );
}

#[test]
fn watch_killed_mid_job_resumes_and_replies_once() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // At most 4 runs per arm: the verdict matters less here than the count.
    let bot = Bot::new("watch-kill", &[("runs: 40", "runs: 4")]);
    // Replies link to the queue page instead of quoting the report.
    let mut config = std::fs::read_to_string(&bot.config).unwrap();
    config.push_str("web_url: http://queue.example.org/\n");
    std::fs::write(&bot.config, config).unwrap();
    let mut first = bot
        .lorebot(&["watch", "--once"])
        .stderr(Stdio::null())
        .spawn()
        .expect("lorebot starts");
    let deadline = Instant::now() + Duration::from_secs(1200);
    let recorded = loop {
        assert!(Instant::now() < deadline, "no runs recorded in 20 minutes");
        assert!(
            first.try_wait().unwrap().is_none(),
            "lorebot watch ended before it was killed"
        );
        let runs = bot.runs_recorded();
        if runs >= 2 {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // Its guest dies with it: no QEMU left booting the job's initramfs.
    let initramfs = bot.dir.join("data/runs/job-1/initramfs.cpio.gz");
    let orphans = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|p| std::fs::read(p.ok()?.path().join("cmdline")).ok())
            .filter(|c| {
                let c = String::from_utf8_lossy(c);
                c.contains("qemu") && c.contains(&*initramfs.to_string_lossy())
            })
            .count()
    };
    let gone = Instant::now() + Duration::from_secs(5);
    while orphans() > 0 && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(orphans(), 0, "QEMU outlived the killed lorebot");
    let jobs = bot.status();
    assert_eq!(jobs[0]["state"], "running", "{jobs:?}");
    assert!(bot.outbox().is_empty());

    let log = bot.watch_once();
    assert!(log.contains("1 interrupted job(s) queued again"), "{log}");
    let reused = log.matches("recorded before").count() as u64;
    assert!(
        reused >= recorded,
        "the {recorded} recorded runs are not run again ({reused} reused): {log}"
    );
    let jobs = bot.status();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["state"], "done");
    assert_eq!(jobs[0]["attempts"], 2);
    assert_eq!(jobs[0]["reply"], "sent");
    let sent = bot.outbox();
    assert_eq!(sent.len(), 1, "exactly one reply");
    assert_eq!(sent[0].in_reply_to.as_deref(), Some(FIX_ID));
    // The reply's table counts every run, the first attempt's included.
    let body = String::from_utf8_lossy(&sent[0].body);
    let base = jobs[0]["base_runs"].as_u64().unwrap();
    assert!(
        body.contains(&format!("/{base} = ")),
        "the table counts all {base} base runs: {body}"
    );

    let series = jobs[0]["series"].as_str().unwrap();
    assert_eq!(series, FIX_ID);
    assert!(
        body.contains("Logs: http://queue.example.org/series/1"),
        "{body}"
    );

    // And a third pass has nothing to do.
    bot.watch_once();
    assert_eq!(bot.outbox().len(), 1);
}

/// A reply to the demo report asking lorebot for `command`.
fn request(dir: &Path, n: u32, command: &str) -> PathBuf {
    let path = dir.join(format!("request-{n}.eml"));
    std::fs::write(
        &path,
        format!(
            "From: Rita Reporter <reporter@example.org>\n\
             To: linux-mm@kvack.org\n\
             Subject: Re: [REGRESSION] RCU stalls in filemap_get_read_batch() reading ramfs files\n\
             Date: Sat, 27 Jul 2024 10:0{n}:00 +0000\n\
             Message-ID: <request-{n}@example.org>\n\
             In-Reply-To: <demo-report-1@example.org>\n\
             References: <demo-report-1@example.org>\n\n\
             Can a bot try this?\n\n{command}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn requests_lorebot_cannot_carry_out_are_answered_once() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mails = support::tempdir("watch-requests-mails");
    let bot = Bot::with_mails(
        "watch-requests",
        &[
            demo_data("report.eml"),
            request(&mails, 1, "#lorebot test"),
            request(&mails, 2, "#lorebot frobnicate"),
        ],
        &[],
    );
    let log = bot.watch_once();
    assert!(log.contains("demo: 2 job(s) queued"), "{log}");
    let mut sent = bot.outbox();
    sent.sort_by(|a, b| a.in_reply_to.cmp(&b.in_reply_to));
    assert_eq!(sent.len(), 2, "one answer per request");
    for (mail, n, why) in [
        (&sent[0], 1, "no patch series in the thread to test"),
        (
            &sent[1],
            2,
            "unknown command `frobnicate` (known: test, bisect)",
        ),
    ] {
        assert_eq!(
            mail.in_reply_to.as_deref(),
            Some(format!("request-{n}@example.org").as_str())
        );
        assert_eq!(mail.to[0].email, "reporter@example.org");
        // Words, whatever the wrapping.
        let body = String::from_utf8_lossy(&mail.body)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(body.contains(why), "{body}");
        assert!(body.contains("#lorebot test: <git url>"), "{body}");
    }
    let jobs = bot.status();
    assert!(
        jobs.iter()
            .all(|j| j["state"] == "refused" && j["reply"] == "sent"),
        "{jobs:?}"
    );
    bot.watch_once();
    assert_eq!(bot.outbox().len(), 2, "answered once");
}
