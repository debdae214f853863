//! Conformance with syzkaller's titles on real console logs, read in place
//! from ../shared/corpus/syzkaller-report/dev.jsonl.

use std::path::PathBuf;

use lorebot::console::{Options, analyze};

const MIN_TITLE_PERCENT: f64 = 95.0;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    log: String,
    title: Option<String>,
    corrupted: bool,
}

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/syzkaller-report/dev.jsonl");
    p.exists().then_some(p)
}

#[test]
fn primary_titles_match_syzkaller() {
    let Some(path) = corpus() else {
        println!(
            "notice: ../shared/corpus/syzkaller-report/dev.jsonl is absent; conformance not checked"
        );
        return;
    };
    let text = std::fs::read_to_string(&path).expect("corpus readable");
    let mut total = 0;
    let mut title_ok = 0;
    let mut presence_ok = 0;
    let mut corrupted_ok = 0;
    let mut report = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line).expect("corpus line is JSON");
        let a = analyze(
            case.log.as_bytes(),
            Options {
                mail: Some(false),
                ..Options::default()
            },
        );
        let got = a.primary();
        total += 1;
        if got.is_some() == case.title.is_some() {
            presence_ok += 1;
        }
        let got_title = got.map(|c| c.title.as_str());
        if got_title == case.title.as_deref() {
            title_ok += 1;
        } else {
            report.push_str(&format!(
                "{}: want {:?} got {:?}\n",
                case.name, case.title, got_title
            ));
        }
        if case.title.is_some() && got.is_some_and(|c| c.corrupted == case.corrupted) {
            corrupted_ok += 1;
        }
    }
    if let Ok(out) = std::env::var("LOREBOT_CONFORMANCE_OUT") {
        std::fs::write(out, &report).expect("write mismatches");
    }
    let pct = |n: usize| 100.0 * n as f64 / total as f64;
    println!(
        "syzkaller conformance: {total} logs; primary title equal {title_ok} ({:.1}%); \
         crash/no-crash agree {presence_ok} ({:.1}%); corrupted flag agree {corrupted_ok}",
        pct(title_ok),
        pct(presence_ok)
    );
    print!("{report}");
    assert_eq!(
        presence_ok, total,
        "crash versus no-crash must agree on every log"
    );
    // The bar; raise it as the formats improve.
    assert!(
        pct(title_ok) >= MIN_TITLE_PERCENT,
        "primary title must match on at least {MIN_TITLE_PERCENT}% of logs"
    );
}
