//! Series, trailers and commands found in threads served by a real
//! public-inbox (scripts/lore-fixture), fetched the way lorebot fetches lore.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{Lore, run};

fn series_json(lore: &Lore, msgid: &str) -> Value {
    let out = run(Command::new(env!("CARGO_BIN_EXE_lorebot")).args([
        "series", "--json", "--url", &lore.url, "--list", "test", "--msgid", msgid,
    ]));
    serde_json::from_slice(&out).unwrap()
}

fn trailers(patch: &Value) -> Vec<String> {
    patch["trailers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}: {}",
                t["name"].as_str().unwrap(),
                t["value"].as_str().unwrap()
            )
        })
        .collect()
}

const V1: &str = "20240730-netfs-pg-private-2-v1-0-c0ffee01@example.org";
const V2: &str = "20240805-netfs-pg-private-2-v2-0-c0ffee02@example.org";
const ACK: &str = "Acked-by: Mia Maintainer <maintainer@example.org>";
const REVIEW: &str = "Reviewed-by: Rob Reviewer <reviewer@example.org>";
const TESTED_ROB: &str = "Tested-by: Rob Reviewer <reviewer@example.org>";
const TESTED_RITA: &str = "Tested-by: Rita Reporter <reporter@example.org>";

#[test]
fn threads_from_a_real_public_inbox() {
    let lore = Lore::start("series");

    // A v2 posted in reply to v1: one thread, two versions, v2 wins, and
    // the v2 cover's Acked-by goes to v2's patches only.
    let v = series_json(&lore, V2);
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    let v1 = series.iter().find(|s| s["id"] == V1).unwrap();
    let v2 = series.iter().find(|s| s["id"] == V2).unwrap();
    assert_eq!(v1["superseded_by"], V2);
    assert!(v2["superseded_by"].is_null());
    assert_eq!(
        (v2["version"].as_u64(), v2["total"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(v2["cover_msgid"], V2);
    assert_eq!(v2["complete"], true);
    assert_eq!(
        v2["base_commit"],
        "4b1e8b0925e3ca8e82b1837b2ef8ecc9cb3bfe69"
    );
    let p = v2["patches"].as_array().unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(trailers(&p[0]), [ACK]);
    assert_eq!(trailers(&p[1]), [REVIEW, TESTED_ROB, ACK]);
    assert_eq!(trailers(&p[2]), [ACK]);
    assert_eq!(trailers(&v1["patches"][0]), [REVIEW]);
    assert!(
        trailers(&v1["patches"][1]).is_empty(),
        "no quoted or v2 trailers on v1"
    );
    let commands = v["commands"].as_array().unwrap();
    let test = commands
        .iter()
        .find(|c| c["msgid"] == "cmd-test-1@example.org")
        .unwrap();
    assert_eq!(
        (test["command"].as_str(), test["series_id"].as_str()),
        (Some("test"), Some(V2))
    );
    let unknown = commands
        .iter()
        .find(|c| c["msgid"] == "cmd-unknown-1@example.org")
        .unwrap();
    assert_eq!(unknown["command"], "invalid");
    assert!(unknown["error"].as_str().unwrap().contains("frobnicate"));

    // A single patch posted in reply to a bug report is a proposed fix for
    // it; commands in the report's thread are about that fix.
    let v = series_json(&lore, "report-1@example.org");
    let fix = &v["series"][0];
    assert_eq!(fix["in_reply_to_report"], "report-1@example.org");
    assert_eq!(fix["total"], 1);
    let cmds = v["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 2, "quoted commands are not commands: {cmds:?}");
    assert_eq!(cmds[0]["repo"], "https://git.example.org/linux.git");
    assert_eq!(cmds[0]["rev"], "master");
    assert_eq!(cmds[0]["series_id"], fix["id"]);
    assert_eq!(
        (cmds[1]["good"].as_str(), cmds[1]["bad"].as_str()),
        (Some("v6.9"), Some("v6.10"))
    );

    // Out of order and incomplete: report the gap, then the late patch
    // completes it.
    let rfc = "20240801-net-next-gro-stats-v1-0-feedf00d@example.org";
    let v = series_json(&lore, rfc);
    let s = &v["series"][0];
    assert_eq!(
        (s["rfc"].as_bool(), s["prefixes"][0].as_str()),
        (Some(true), Some("net-next"))
    );
    assert_eq!(s["complete"], false);
    assert_eq!(s["missing"], serde_json::json!([3]));
    let idx: Vec<u64> = s["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [1, 2, 4, 5]);

    lore.add(&["later/rfc-3.patch", "later/tested-v2-0.eml"]);
    let v = series_json(&lore, rfc);
    assert_eq!(v["series"][0]["complete"], true);
    let v = series_json(&lore, V2);
    let v2 = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == V2)
        .unwrap()
        .clone();
    for p in v2["patches"].as_array().unwrap() {
        assert!(trailers(p).contains(&TESTED_RITA.to_owned()), "{p}");
    }
}

#[test]
fn attached_and_quoted_printable_patches_decode_byte_exact() {
    let lore = Lore::start("decode");
    let client = lorebot::lore::Client::new("test");
    for (msgid, expected) in [
        ("20240802-ceph-typo-attach-1@example.org", "attach.patch"),
        ("20240802-filemap-doc-qp-1@example.org", "qp.body"),
    ] {
        let raw = client.message(&lore.url, "test", msgid).unwrap();
        let mail = lorebot::mail::Mail::parse(&raw, lorebot::mail::DEFAULT_MAX_SIZE).unwrap();
        let want = std::fs::read(lore.mails().join("expected").join(expected)).unwrap();
        let got = if expected == "attach.patch" {
            mail.attachments[0].data.clone()
        } else {
            mail.body.clone()
        };
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{msgid}"
        );
        assert!(mail.has_patch());
    }
}
