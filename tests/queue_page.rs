//! `lorebot serve`: the patch queue over HTTP, on a database filled the way
//! the bot fills it: a real public-inbox synced with `lorebot lore sync`,
//! its proposed fixes queued, one of them tested (runs recorded with a
//! real console log) and answered.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use lorebot::checks::github::Pull;
use lorebot::store::{NewCheck, NewReply, RecordedRun, SeriesFilter, Store};
use serde_json::Value;

struct Server {
    _server: support::Server,
    url: String,
}

fn serve(data: &Path) -> Server {
    let port = support::free_port();
    Server {
        _server: support::Server::start(
            Command::new(env!("CARGO_BIN_EXE_lorebot"))
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--data-dir")
                .arg(data),
            port,
        ),
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::get(url).unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap())
}

/// Records a base run that stalled and a patched run that ran clean, with
/// a real console log, as the bot does.
fn record_two_runs(store: &mut Store, job: i64, log: &Path) {
    for (arm, seq, outcome, reason) in [
        (
            "base",
            1,
            "crashed",
            "INFO: rcu detected stall in lkdtm_SOFTLOCKUP",
        ),
        ("patched", 1, "clean", "reproducer exited with status 0"),
    ] {
        let run = serde_json::json!({
            "index": seq, "outcome": outcome, "reason": reason, "accel": "tcg",
            "log": log, "duration_s": 33.2, "boot_s": 2.1, "start_uptime_s": 1.9,
            "exit_code": null, "analysis": {"crashes": [], "stats": {
                "bytes": 0, "lines": 0, "crashes": 0, "stall_reports": 0,
                "first_stall_time_s": null, "longest_stall_jiffies": null,
                "longest_stall_s": null, "hz": null, "grace_periods": [],
                "livelock": false, "stall_cleared": false, "panicked": false,
                "truncated_lines": 0}}
        });
        let recorded = RecordedRun {
            arm: arm.into(),
            commit: "9279a21df7ed0000000000000000000000000000".into(),
            seq,
            run: run.to_string(),
        };
        store
            .record_run(job, &recorded, outcome, &log.display().to_string(), 1002)
            .unwrap();
    }
}

/// A data dir whose database holds the lore fixture, its fixes queued for
/// a job, and the first of them tested: returns it and that series' id.
fn bot_data(name: &str, lore: &support::Lore) -> (PathBuf, i64) {
    let data = support::tempdir(name);
    let db = data.join("lorebot.sqlite3");
    support::run(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["lore", "sync", "--url", &lore.url, "--list", "test"])
            .arg("--db")
            .arg(&db),
    );
    let mut store = Store::open(&db).unwrap();
    let list = store.list_id(&lore.url, "test").unwrap();
    assert!(store.queue(list, "filemap-stall", 0, 1000).unwrap() >= 2);
    // The bot took every job: those of one series were tested (FIXED),
    // the others are waiting.
    let log =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console/lkdtm-softlockup.log");
    let mut tested_msgid = None;
    let mut waiting = Vec::new();
    while let Some(job) = store.claim(1001).unwrap() {
        let msgid = job.series.clone().unwrap().0;
        if *tested_msgid.get_or_insert_with(|| msgid.clone()) != msgid {
            waiting.push(job.id);
            continue;
        }
        record_two_runs(&mut store, job.id, &log);
        let reply_id = format!("lorebot-{}@example.org", job.id);
        let reply = NewReply {
            msgid: &reply_id,
            channel: "maildir",
            sender: "{\"name\":\"lorebot\",\"email\":\"bot@example.org\"}",
            recipients: "[]",
            body: b"Subject: Re: fix\r\n\r\nVerdict: FIXED (after 14 clean runs)\r\n",
        };
        store
            .finish(
                job.id,
                "done",
                Some("FIXED"),
                "after 14 clean runs",
                Some("{\"build_s\":0.1,\"guest_s\":66.4,\"total_s\":68.0}"),
                Some(&reply),
                &[],
                1003,
            )
            .unwrap();
    }
    for id in waiting {
        store.set_state(id, "queued", None, 1004).unwrap();
    }
    for reply in store.unsent_replies(None).unwrap() {
        store.reply_sent(reply.id, Ok(1004)).unwrap();
    }
    let tested = store
        .series_rows(&SeriesFilter {
            state: Some("FIXED".into()),
            per_page: 10,
            ..SeriesFilter::default()
        })
        .unwrap()
        .0[0]
        .id;
    (data, tested)
}

#[test]
fn the_queue_lists_filters_and_links_every_series() {
    let lore = support::Lore::start("queue");
    let (data, tested) = bot_data("queue-data", &lore);
    let server = serve(&data);
    let api: Value = serde_json::from_str(&get(&format!("{}/api/series", server.url)).1).unwrap();
    let all = api["total"].as_u64().unwrap();
    assert!(all >= 3, "{api}");
    let series = api["series"].as_array().unwrap();
    let states: Vec<&str> = series
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "FIXED").count(),
        1,
        "{states:?}"
    );
    assert!(states.contains(&"queued"), "{states:?}");
    assert!(
        states.iter().any(|s| ["new", "superseded"].contains(s)),
        "a series that is no fix is not queued: {states:?}"
    );
    // Newest first.
    let ids: Vec<i64> = series.iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    let (status, page) = get(&format!("{}/", server.url));
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("{all} series; page 1 of 1")),
        "{page}"
    );
    for s in series {
        let subject = s["subject"].as_str().unwrap().replace('\'', "&#39;");
        assert!(
            page.contains(&format!("href=\"/series/{}\"", s["id"])),
            "{subject} is linked"
        );
    }
    assert!(
        page.contains("/test/"),
        "links to the thread on lore: {page}"
    );

    let (_, fixed) = get(&format!("{}/?state=FIXED", server.url));
    assert!(fixed.contains("1 series;"), "{fixed}");
    assert!(fixed.contains(&format!("href=\"/series/{tested}\"")));
    let (_, none) = get(&format!("{}/?list=no-such-list", server.url));
    assert!(none.contains("0 series;"), "{none}");
    let author = series[0]["author"].as_str().unwrap();
    let name = author.split_whitespace().next().unwrap().to_lowercase();
    let api: Value =
        serde_json::from_str(&get(&format!("{}/api/series?author={name}", server.url)).1).unwrap();
    let by_author = api["series"].as_array().unwrap();
    assert!(!by_author.is_empty() && by_author.len() as u64 <= all);
    assert!(
        by_author
            .iter()
            .all(|s| s["author"].as_str().unwrap().to_lowercase().contains(&name)),
        "{api}"
    );

    // The tested series: its test, runs, log links and the reply.
    let (status, page) = get(&format!("{}/series/{tested}", server.url));
    assert_eq!(status, 200);
    assert!(page.contains(": filemap-stall"), "{page}");
    assert!(
        page.contains("INFO: rcu detected stall in lkdtm_SOFTLOCKUP"),
        "{page}"
    );
    assert!(
        page.contains("Verdict: FIXED (after 14 clean runs)"),
        "{page}"
    );
    assert!(page.contains("guests 66 s"), "{page}");
    let log = first_console_log(&server, &page);
    assert!(
        log.contains("rcu_sched self-detected stall") || log.contains("rcu: INFO"),
        "{}",
        &log[..200.min(log.len())]
    );
    let detail: Value =
        serde_json::from_str(&get(&format!("{}/api/series/{tested}", server.url)).1).unwrap();
    assert_eq!(detail["jobs"][0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(detail["state"], "FIXED");

    assert_eq!(get(&format!("{}/series/999999", server.url)).0, 404);
    assert_eq!(get(&format!("{}/runs/999999/log", server.url)).0, 404);

    let (_, feed) = get(&format!("{}/feed.atom", server.url));
    assert!(feed.starts_with("<?xml"), "{feed}");
    assert!(feed.contains("<title>FIXED: "), "{feed}");
    assert!(
        feed.contains(&format!(
            "<link href=\"{}/series/{tested}\"></link>",
            server.url
        )),
        "{feed}"
    );
}

/// Debian's chromium, headless, as a user's browser.
struct Browser {
    shots: PathBuf,
}

impl Browser {
    fn new() -> Browser {
        assert!(
            Command::new("chromium").arg("--version").output().is_ok(),
            "chromium is not installed: run scripts/install-test-deps"
        );
        // Kept after the test: what each page looked like.
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("queue-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { shots }
    }

    fn chromium(&self) -> Command {
        let mut c = Command::new("chromium");
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,1000",
        ]);
        c
    }

    /// Loads `url` as the browser renders it: its DOM, and a screenshot
    /// saved as `name`.png.
    fn load(&self, url: &str, name: &str) -> String {
        let shot = self.shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        support::run(
            self.chromium()
                .arg(format!("--screenshot={}", shot.display()))
                .arg(url),
        );
        let png = std::fs::read(&shot).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG"), "no screenshot of {url}");
        let dom = support::run(self.chromium().arg("--dump-dom").arg(url));
        String::from_utf8_lossy(&dom).into_owned()
    }
}

/// The console log the first run link on `page` leads to.
fn first_console_log(server: &Server, page: &str) -> String {
    let link = links(page)
        .into_iter()
        .find(|h| h.starts_with("/runs/"))
        .expect("a console log link");
    let (status, log) = get(&format!("{}{link}", server.url));
    assert_eq!(status, 200, "{link}");
    log
}

/// The `href`s in a DOM, in order.
fn links(dom: &str) -> Vec<String> {
    dom.split("href=\"")
        .skip(1)
        .filter_map(|p| p.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

#[test]
fn a_maintainer_browses_the_queue() {
    let lore = support::Lore::start("queue-browser");
    let (data, tested) = bot_data("queue-browser-data", &lore);
    let server = serve(&data);
    let browser = Browser::new();

    let queue = browser.load(&format!("{}/", server.url), "1-queue");
    assert!(queue.contains("<h1>Patch queue</h1>"), "{queue}");
    // The filter form, filled in as a user would: state FIXED. A GET form
    // submits its fields, in order, as the query string.
    let form = queue
        .split("<form")
        .nth(1)
        .and_then(|f| f.split("</form>").next())
        .expect("a filter form");
    assert!(
        form.contains("method=\"get\"") && form.contains("action=\"/\""),
        "{form}"
    );
    let fields: Vec<&str> = form
        .split("name=\"")
        .skip(1)
        .filter_map(|p| p.split('"').next())
        .collect();
    assert_eq!(fields, ["list", "state", "author"]);
    let query: Vec<String> = fields
        .iter()
        .map(|f| format!("{f}={}", if *f == "state" { "FIXED" } else { "" }))
        .collect();
    let filtered = browser.load(
        &format!("{}/?{}", server.url, query.join("&")),
        "2-filtered",
    );
    assert!(filtered.contains("1 series;"), "{filtered}");

    // Open the series, then one of its console logs.
    let series_link = links(&filtered)
        .into_iter()
        .find(|h| h.starts_with("/series/"))
        .expect("a link to the series");
    assert_eq!(series_link, format!("/series/{tested}"));
    let series = browser.load(&format!("{}{series_link}", server.url), "3-series");
    assert!(series.contains("FIXED"), "{series}");
    assert!(
        series.contains("Verdict: FIXED (after 14 clean runs)"),
        "{series}"
    );
    let log_link = links(&series)
        .into_iter()
        .find(|h| h.starts_with("/runs/"))
        .expect("a link to a console log");
    let log = browser.load(&format!("{}{log_link}", server.url), "4-log");
    assert!(
        log.contains("Linux version 6.1"),
        "{}",
        &log[..300.min(log.len())]
    );
    assert!(log.contains("lkdtm"), "the LKDTM run's console");
}

/// KCIDB's own validator (scripts/install-test-deps installs kcidb-io):
/// whether `doc` is valid KCIDB data of the latest schema, and why not.
fn kcidb_valid(doc: &str) -> Result<(), String> {
    let python = support::cache_dir().join("kcidb-venv/bin/python");
    assert!(
        python.is_file(),
        "no kcidb-io: run scripts/install-test-deps"
    );
    let mut child = Command::new(python)
        .args([
            "-c",
            "import json, sys, kcidb_io\n\
             kcidb_io.schema.LATEST.validate_exactly(json.load(sys.stdin))",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn results_export_as_valid_kcidb() {
    let lore = support::Lore::start("queue-kcidb");
    let (data, _) = bot_data("queue-kcidb-data", &lore);
    record_pulls(&mut Store::open(&data.join("lorebot.sqlite3")).unwrap());
    let out = support::run(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["export", "--kcidb", "--data-dir"])
            .arg(&data),
    );
    let text = String::from_utf8(out).unwrap();
    kcidb_valid(&text).unwrap_or_else(|e| panic!("KCIDB rejects the export: {e}\n{text}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["version"]["major"], 5);
    // Three finished tests of one series and one of a pull request: a
    // checkout and a build per arm, a test per run.
    assert_eq!(doc["checkouts"].as_array().unwrap().len(), 8, "{doc}");
    assert_eq!(doc["builds"].as_array().unwrap().len(), 8, "{doc}");
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 8, "{doc}");
    let status = |build: &str| {
        tests
            .iter()
            .filter(|t| t["build_id"].as_str().unwrap().ends_with(build))
            .map(|t| t["status"].as_str().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(status("-base-build"), ["FAIL"; 4], "the base crashed");
    assert_eq!(
        status("-patched-build"),
        ["PASS"; 4],
        "the patched ran clean"
    );
    let patched: Vec<&Value> = doc["checkouts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().unwrap().ends_with("-patched"))
        .collect();
    assert!(
        patched[0]["message_id"].as_str().unwrap().contains('@'),
        "{:?}",
        patched[0]
    );
    let pull = patched.last().unwrap();
    assert_eq!(
        pull["git_repository_url"],
        "https://github.com/octo/linux.git"
    );
    assert_eq!(pull["git_repository_branch"], "master");
    assert!(pull.get("message_id").is_none(), "{pull}");
    assert!(
        pull["comment"]
            .as_str()
            .unwrap()
            .starts_with("octo/linux#2 \"mm: change 2\""),
        "{pull}"
    );

    // The validator is real: a status KCIDB does not know is refused.
    let broken = text.replacen("\"PASS\"", "\"FIXED\"", 1);
    assert!(kcidb_valid(&broken).is_err());
}

/// Records in `store` three heads of two pull requests of octo/linux as
/// the bot does: the first pushed over before its test, the second tested
/// (FIXED, runs with a real console log, its check run recorded), the
/// third queued. Other queued jobs stay queued.
fn record_pulls(store: &mut Store) {
    let pull = |number: u64, head: &str| Pull {
        number,
        title: format!("mm: change {number}"),
        author: Some("dev".into()),
        url: format!("https://github.com/octo/linux/pull/{number}"),
        head_sha: head.repeat(40),
        base_sha: "b".repeat(40),
        base_ref: "master".into(),
        clone_url: "https://github.com/octo/linux.git".into(),
    };
    store
        .queue_pulls(
            "octo/linux",
            "filemap-stall",
            &[pull(1, "a"), pull(2, "c")],
            1000,
        )
        .unwrap();
    // #1 gets a new head before its test.
    store
        .queue_pulls("octo/linux", "filemap-stall", &[pull(1, "e")], 1001)
        .unwrap();
    let log =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console/lkdtm-softlockup.log");
    let (mut tested, mut waiting) = (false, Vec::new());
    while let Some(job) = store.claim(1002).unwrap() {
        let Some(queued) = job.pull else {
            waiting.push(job.id);
            continue;
        };
        match (queued.pull.number, queued.superseded) {
            (1, true) => store.set_state(job.id, "superseded", None, 1003).unwrap(),
            (2, _) => {
                record_two_runs(store, job.id, &log);
                store.set_check_run(job.id, 1000).unwrap();
                let check = serde_json::json!({
                    "conclusion": "success",
                    "title": "FIXED: base 3/8, head 0/14",
                    "summary": "**FIXED: base 3/8, head 0/14**",
                    "annotations": [{"path": "mm/filemap.c", "start_line": 2345,
                        "end_line": 2345, "annotation_level": "failure",
                        "title": "INFO: rcu detected stall in filemap_get_read_batch",
                        "message": "in the base's runs"}],
                })
                .to_string();
                store
                    .finish(
                        job.id,
                        "done",
                        Some("FIXED"),
                        "after 14 clean runs",
                        None,
                        None,
                        &[NewCheck {
                            forge: "github",
                            payload: &check,
                        }],
                        1004,
                    )
                    .unwrap();
                tested = true;
            }
            _ => waiting.push(job.id),
        }
    }
    for id in waiting {
        store.set_state(id, "queued", None, 1005).unwrap();
    }
    assert!(tested, "pull request 2 was tested");
}

#[test]
fn pull_requests_have_their_own_listing_and_pages() {
    let data = support::tempdir("queue-pulls");
    record_pulls(&mut Store::open(&data.join("lorebot.sqlite3")).unwrap());
    let server = serve(&data);

    let api: Value = serde_json::from_str(&get(&format!("{}/api/pulls", server.url)).1).unwrap();
    assert_eq!(api["total"], 3, "{api}");
    let states: Vec<(u64, &str, &str)> = api["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().unwrap(),
                &p["head"].as_str().unwrap()[..1],
                p["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (1, "e", "queued"),
            (2, "c", "FIXED"),
            (1, "a", "superseded")
        ]
    );
    let fixed = &api["pulls"][1];
    assert_eq!(
        (fixed["base_runs"].as_u64(), fixed["patched_runs"].as_u64()),
        (Some(1), Some(1))
    );
    let filtered: Value = serde_json::from_str(
        &get(&format!(
            "{}/api/pulls?state=FIXED&list=octo/linux",
            server.url
        ))
        .1,
    )
    .unwrap();
    assert_eq!(filtered["total"], 1);

    let (status, queue) = get(&format!("{}/", server.url));
    assert_eq!(status, 200);
    assert!(
        queue.contains("href=\"/pulls\""),
        "the queue links the pull requests"
    );
    let (_, list) = get(&format!("{}/pulls", server.url));
    let id = fixed["id"].as_i64().unwrap();
    assert!(list.contains(&format!("href=\"/pulls/{id}\"")), "{list}");
    assert!(
        list.contains("#2 mm: change 2") && list.contains("octo/linux"),
        "{list}"
    );

    let (status, page) = get(&format!("{}/pulls/{id}", server.url));
    assert_eq!(status, 200);
    assert!(
        page.contains("https://github.com/octo/linux/pull/2"),
        "{page}"
    );
    assert!(page.contains("github check (not sent yet)"), "{page}");
    assert!(
        page.contains("success: FIXED: base 3/8, head 0/14"),
        "{page}"
    );
    assert!(page.contains("mm/filemap.c:2345"), "{page}");
    let console = first_console_log(&server, &page);
    assert!(console.contains("rcu"), "the run's console log");

    let detail: Value =
        serde_json::from_str(&get(&format!("{}/api/pulls/{id}", server.url)).1).unwrap();
    assert_eq!(detail["jobs"][0]["checks"][0]["forge"], "github");
    assert_eq!(detail["jobs"][0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(get(&format!("{}/pulls/999999", server.url)).0, 404);
}
