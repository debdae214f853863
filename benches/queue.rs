//! How fast `lorebot serve` answers on a large queue.
//!
//! `cargo bench --bench queue` fills a new database under
//! `target/bench-queue/` with `LOREBOT_BENCH_SERIES` series (default
//! 10,000) the way the bot does: a mail per series, the series recorded,
//! a job queued for each, and every other one tested (two runs and a reply
//! recorded). It then starts `lorebot serve` on it and times each page
//! over HTTP: the queue's first and last page, a filter by state, by
//! author and by list, a series page, the JSON API and the feed, printing
//! the median and the slowest of 20 requests.
//!
//! Run without `--bench` (as `cargo test --benches` does) it smoke-tests
//! itself on 200 series.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lorebot::series::{Analysis, Patch, Series};
use lorebot::store::{AssembledThread, Entry, NewMessage, NewReply, RecordedRun, Store};
use lorebot::vm::{Accel, Outcome, Run};

const REQUESTS: usize = 20;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A clean run, as the bot records it.
fn clean_run() -> Run {
    Run {
        index: 1,
        outcome: Outcome::Clean,
        reason: "reproducer exited with status 0".into(),
        accel: Accel::Tcg,
        log: "/nonexistent.log".into(),
        duration_s: 5.0,
        boot_s: Some(2.0),
        start_uptime_s: Some(1.8),
        exit_code: Some(0),
        analysis: Default::default(),
    }
}

fn fill(db: &Path, n: usize) {
    let mut store = Store::open(db).expect("database");
    let list = store.list_id("http://lore.example", "bench").unwrap();
    let raws: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let id = format!("series-{i}@example.org");
            let raw = format!(
                "From: Author {} <author{}@example.org>\nSubject: [PATCH] mm: fix {i}\nMessage-ID: <{id}>\n\npatch\n",
                i % 97,
                i % 97
            );
            (id, raw.into_bytes())
        })
        .collect();
    for (chunk_no, chunk) in raws.chunks(1000).enumerate() {
        let authors: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(k, _)| format!("Author {}", (chunk_no * 1000 + k) % 97))
            .collect();
        let entries: Vec<Entry<'_>> = chunk
            .iter()
            .zip(&authors)
            .map(|((id, raw), author)| {
                Entry::Message(NewMessage {
                    msgid: id,
                    msgid_derived: false,
                    git_commit: "c",
                    blob: id,
                    date: Some(1_700_000_000),
                    author: Some(author.clone()),
                    subject: "s",
                    in_reply_to: Some("report@example.org"),
                    references: &[],
                    raw,
                })
            })
            .collect();
        store
            .ingest(list, 0, &format!("c{chunk_no}"), &entries)
            .unwrap();
    }
    let series: Vec<Series> = raws
        .iter()
        .enumerate()
        .map(|(i, (id, _))| Series {
            subject: format!("mm: fix {i}"),
            version: 1,
            rfc: false,
            prefixes: vec![],
            total: 1,
            cover_msgid: None,
            complete: true,
            missing: vec![],
            base_commit: None,
            prerequisite_patch_ids: vec![],
            in_reply_to_report: Some("report@example.org".into()),
            superseded_by: None,
            patches: vec![Patch {
                index: 1,
                total: 1,
                msgid: id.clone(),
                subject: format!("mm: fix {i}"),
                author: Some(format!("Author {} <author{}@example.org>", i % 97, i % 97)),
                trailers: vec![],
            }],
            id: id.clone(),
        })
        .collect();
    store
        .save_threads(
            list,
            &[AssembledThread {
                dirty: vec![],
                found: Analysis {
                    series,
                    commands: vec![],
                },
            }],
            1_700_000_000,
        )
        .unwrap();
    store.queue(list, "bench", 0, 1_700_000_000).unwrap();
    let mut k = 0;
    while let Some(job) = store.claim(1_700_000_001).unwrap() {
        k += 1;
        if k % 2 == 1 {
            continue; // left running: "testing"
        }
        for arm in ["base", "patched"] {
            let run = RecordedRun {
                arm: arm.into(),
                commit: "0123456789ab".into(),
                seq: 1,
                run: serde_json::to_string(&clean_run()).unwrap(),
            };
            store
                .record_run(job.id, &run, "clean", "/nonexistent.log", 1_700_000_002)
                .unwrap();
        }
        let msgid = format!("reply-{}@example.org", job.id);
        let reply = NewReply {
            msgid: &msgid,
            channel: "maildir",
            sender: "{}",
            recipients: "[]",
            body: b"Verdict: FIXED\r\n",
        };
        store
            .finish(
                job.id,
                "done",
                Some(if k % 4 == 0 {
                    "FIXED"
                } else {
                    "STILL REPRODUCES"
                }),
                "bench",
                None,
                Some(&reply),
                &[],
                1_700_000_003,
            )
            .unwrap();
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full {
        std::env::var("LOREBOT_BENCH_SERIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000)
    } else {
        200
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-queue-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("lorebot.sqlite3");
    let started = Instant::now();
    fill(&db, n);
    println!(
        "queue of {n} series (half tested) filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&dir)
            .spawn()
            .expect("lorebot serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "lorebot serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = reqwest::blocking::Client::new();
    let last_page = n.div_ceil(50);
    let pages = [
        ("queue, first page", "/".to_owned()),
        ("queue, last page", format!("/?page={last_page}")),
        ("filter by state", "/?state=FIXED".to_owned()),
        ("filter by author", "/?author=author%2042".to_owned()),
        ("filter by list", "/?list=bench&page=3".to_owned()),
        ("series page", format!("/series/{}", n / 2)),
        ("JSON, first page", "/api/series".to_owned()),
        ("Atom feed", "/feed.atom".to_owned()),
    ];
    for (name, path) in pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..REQUESTS {
            let t = Instant::now();
            let r = client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().unwrap().len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name:<20} {path:<24} median {:>7.1} ms, slowest {:>7.1} ms, {bytes} bytes",
            times[REQUESTS / 2],
            times[REQUESTS - 1]
        );
    }
}
