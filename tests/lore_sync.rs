//! `lorebot lore sync`: mirror public-inbox git epochs and ingest each
//! message exactly once, across new mails, purges, new epochs and restarts.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{Lore, run, tempdir};

fn sync(url: &str, list: &str, state: &Path, extra: &[&str]) -> Value {
    let out = run(Command::new(env!("CARGO_BIN_EXE_lorebot"))
        .args([
            "lore", "sync", "--json", "--url", url, "--list", list, "--db",
        ])
        .arg(state.join("db.sqlite3"))
        .args(extra));
    serde_json::from_slice(&out).unwrap()
}

fn count(state: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(state.join("db.sqlite3")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn follows_a_real_public_inbox_without_missing_or_repeating() {
    let lore = Lore::start("sync");
    let state = tempdir("sync");

    let r = sync(&lore.url, "test", &state, &[]);
    assert_eq!(
        (r["ingested"].as_u64(), r["epochs"].clone()),
        (Some(24), serde_json::json!([0]))
    );
    // Five threads: the report with its fix, netfs v1+v2, the RFC series,
    // and two single patches; four #lorebot commands.
    let assembled = |r: &Value| {
        (
            r["threads"].as_u64(),
            r["series"].as_u64(),
            r["commands"].as_u64(),
        )
    };
    assert_eq!(assembled(&r), (Some(5), Some(6), Some(4)));
    let r = sync(&lore.url, "test", &state, &[]);
    assert_eq!(
        (r["ingested"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(0))
    );

    // A new message arrives: its thread is assembled again and the series
    // is complete now.
    let complete = "SELECT complete FROM series \
                    WHERE series_msgid = '20240801-net-next-gro-stats-v1-0-feedf00d@example.org'";
    assert_eq!(count(&state, complete), 0);
    lore.add(&["later/rfc-3.patch"]);
    let r = sync(&lore.url, "test", &state, &[]);
    assert_eq!(r["ingested"], 1);
    assert_eq!(assembled(&r), (Some(1), Some(1), Some(0)));
    assert_eq!(count(&state, complete), 1);
    assert_eq!(count(&state, "SELECT count(*) FROM dirty_threads"), 0);

    // A restart after a crash between two batches: the cursor is behind
    // what is stored. The re-walk stores nothing twice.
    let conn = rusqlite::Connection::open(state.join("db.sqlite3")).unwrap();
    let first: String = conn
        .query_row(
            "SELECT git_commit FROM messages ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute("UPDATE epoch_cursors SET last_commit = ?1", [&first])
        .unwrap();
    drop(conn);
    let r = sync(&lore.url, "test", &state, &[]);
    assert_eq!(
        (r["ingested"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(24))
    );
    assert_eq!(count(&state, "SELECT count(*) FROM messages"), 25);

    // A purge rewrites history: the mirror follows, the message is marked
    // deleted, nothing is ingested twice.
    run(&mut lore.script(&["--purge", "cmd-unknown-1@example.org"]));
    let r = sync(&lore.url, "test", &state, &[]);
    assert_eq!(r["rewritten_epochs"], serde_json::json!([0]));
    assert_eq!(
        (r["ingested"].as_u64(), r["deleted"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        count(
            &state,
            "SELECT deleted FROM messages WHERE msgid = 'cmd-unknown-1@example.org'"
        ),
        1
    );

    // A new epoch is discovered.
    run(&mut lore.script(&["--new-epoch"]));
    lore.add(&["later/tested-v2-0.eml"]);
    let r = sync(&lore.url, "test", &state, &[]);
    assert_eq!(r["epochs"], serde_json::json!([0, 1]));
    assert_eq!(r["ingested"], 1);
    assert_eq!(
        count(
            &state,
            "SELECT epoch FROM messages WHERE msgid = 'reply-tested-v2-0@example.org'"
        ),
        1
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// A local archive in public-inbox v2 layout (`<dir>/<list>/0`), one commit
/// per entry, made with libgit2.
fn archive(dir: &Path, list: &str, mails: &[&[u8]]) {
    let repo = git2::Repository::init_bare(dir.join(list).join("0")).unwrap();
    let sig = git2::Signature::new(
        "archive",
        "a@example.org",
        &git2::Time::new(1_700_000_000, 0),
    )
    .unwrap();
    let mut parent: Option<git2::Oid> = None;
    for (i, m) in mails.iter().enumerate() {
        let blob = repo.blob(m).unwrap();
        let mut tb = repo.treebuilder(None).unwrap();
        tb.insert("m", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let parents: Vec<git2::Commit> = parent
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        let c = repo
            .commit(
                Some("refs/heads/master"),
                &sig,
                &sig,
                &format!("mail {i}"),
                &tree,
                &refs,
            )
            .unwrap();
        parent = Some(c);
    }
}

#[test]
fn hostile_mails_are_rejected_with_a_reason_and_lose_nothing_else() {
    let dir = tempdir("hostile");
    let mut chain: Vec<Vec<u8>> = Vec::new();
    for i in 0..3000 {
        let parent = if i > 0 {
            format!("In-Reply-To: <deep-{}@x>\n", i - 1)
        } else {
            String::new()
        };
        chain.push(
            format!("Message-ID: <deep-{i}@x>\n{parent}Subject: Re: deep\n\nreply {i}\n")
                .into_bytes(),
        );
    }
    // 50 MB: over the default 16 MiB cap.
    let big = [
        b"Message-ID: <big@x>\nSubject: big\n\n".as_slice(),
        &vec![b'x'; 50 << 20],
    ]
    .concat();
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut mails: Vec<&[u8]> = vec![
        b"Message-ID: <good-1@x>\nSubject: [PATCH] a\n\nok\n",
        &garbage,
        b"From: someone@x\nSubject: no id\n\nbody\n",
        b"Message-ID: <good-1@x>\nSubject: same id, other content\n\nz\n",
        &big,
        b"Message-ID: <good-2@x>\nContent-Type: multipart/mixed; boundary=\"zz\"\nSubject: broken mime\n\n--zz\nContent-Type: text/plain\n\nno end boundary\n",
    ];
    mails.extend(chain.iter().map(Vec::as_slice));
    archive(&dir.join("arch"), "h", &mails);
    let url = format!("file://{}", dir.join("arch").display());
    let state = dir.join("state");
    let r = sync(&url, "h", &state, &[]);
    // Every entry is accounted for: stored, a duplicate, or rejected with
    // a reason (binary garbage either fails MIME parsing or is kept under a
    // derived Message-ID).
    assert_eq!(
        r["rejected"].as_u64().unwrap()
            + r["ingested"].as_u64().unwrap()
            + r["duplicates"].as_u64().unwrap(),
        3006
    );
    assert_eq!(r["duplicates"], 1, "the second good-1 is not stored twice");
    assert_eq!(
        count(
            &state,
            "SELECT count(*) FROM rejected WHERE reason LIKE '%over the 16777216-byte limit%'"
        ),
        1
    );
    assert_eq!(
        count(
            &state,
            "SELECT count(*) FROM messages WHERE msgid LIKE 'deep-%'"
        ),
        3000
    );
    assert_eq!(
        count(
            &state,
            "SELECT count(*) FROM messages WHERE msgid_derived = 1 AND subject = 'no id'"
        ),
        1
    );
    assert_eq!(
        count(
            &state,
            "SELECT count(*) FROM messages WHERE msgid = 'good-2@x'"
        ),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a sync stored that assembly and the ingest decide: every message
/// and whether it is deleted, every series as assembled, every command.
fn stored(state: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(state.join("db.sqlite3")).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT msgid || ' ' || epoch || ' ' || deleted || ' ' || length(raw) FROM messages ORDER BY msgid",
        "SELECT series_msgid || ' ' || complete || ' ' || ifnull(superseded_by, '-') || ' ' || assembled FROM series ORDER BY series_msgid",
        "SELECT msgid || ' ' || command FROM commands ORDER BY msgid, command",
        "SELECT 'dirty ' || count(*) FROM dirty_threads",
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let found = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.extend(found.map(Result::unwrap));
    }
    rows
}

/// Files under `dir` with more than one link.
fn hard_links(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => hard_links(&e.path()),
            false => usize::from(std::os::unix::fs::MetadataExt::nlink(&e.metadata().unwrap()) > 1),
        })
        .sum()
}

/// The archive of the lore fixture as a local `file://` base: `<base>/test/N`
/// links to the inbox's epoch N.
fn link_epochs(lore: &Lore, base: &Path) {
    let list = base.join("test");
    std::fs::create_dir_all(&list).unwrap();
    for n in 0.. {
        let epoch = lore.dir.join(format!("inbox/test/git/{n}.git"));
        if !epoch.exists() {
            break;
        }
        let link = list.join(n.to_string());
        if !link.exists() {
            std::os::unix::fs::symlink(&epoch, &link).unwrap();
        }
    }
}

#[test]
fn a_local_archive_and_a_sync_without_kept_mails_store_what_the_served_one_does() {
    let lore = Lore::start("local");
    let dir = tempdir("local");
    let base = dir.join("base");
    let url = format!("file://{}", base.display());
    let (served, local, unkept) = (dir.join("served"), dir.join("local"), dir.join("unkept"));
    // The library's sync, keeping no parsed mail for assembly: every thread
    // is read back from the store and parsed again.
    let sync_unkept = || {
        std::fs::create_dir_all(&unkept).unwrap();
        let mut store = lorebot::store::Store::open(&unkept.join("db.sqlite3")).unwrap();
        let opts = lorebot::lore::SyncOptions {
            parsed_mail_budget: 0,
            ..Default::default()
        };
        serde_json::to_value(lorebot::lore::sync(&mut store, &unkept, &url, "test", &opts).unwrap())
            .unwrap()
    };
    let step = |what: &str| {
        link_epochs(&lore, &base);
        let r = sync(&lore.url, "test", &served, &[]);
        assert!(
            r["ingested"].as_u64() > Some(0) || r["deleted"].as_u64() > Some(0),
            "{what}: {r}"
        );
        assert_eq!(sync(&url, "test", &local, &[]), r, "{what}: local archive");
        assert_eq!(sync_unkept(), r, "{what}: no kept mails");
        let expected = stored(&served);
        assert_eq!(stored(&local), expected, "{what}: local archive");
        assert_eq!(stored(&unkept), expected, "{what}: no kept mails");
    };
    step("first sync");
    // The local mirror was cloned with hard links, not fetched (a fetch
    // writes objects of its own).
    let objects = lorebot::lore::mirror::Mirror::new(&local, &url, "test")
        .epoch_path(0)
        .join("objects");
    assert!(
        hard_links(&objects) > 0,
        "no object in {} is hard-linked",
        objects.display()
    );
    lore.add(&["later/rfc-3.patch"]);
    step("a new mail");
    run(&mut lore.script(&["--purge", "cmd-unknown-1@example.org"]));
    step("a purge");
    run(&mut lore.script(&["--new-epoch"]));
    lore.add(&["later/tested-v2-0.eml"]);
    step("a new epoch");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Commits `mail` as the file `m` of a public-inbox-like archive, on top of
/// `parents`, and moves `master` there.
fn commit_mail(repo: &git2::Repository, mail: &str, parents: &[git2::Oid]) -> git2::Oid {
    let sig =
        git2::Signature::new("a", "a@example.org", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let mut tb = repo.treebuilder(None).unwrap();
    tb.insert("m", repo.blob(mail.as_bytes()).unwrap(), 0o100644)
        .unwrap();
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let parents: Vec<git2::Commit> = parents
        .iter()
        .map(|p| repo.find_commit(*p).unwrap())
        .collect();
    let parents: Vec<&git2::Commit> = parents.iter().collect();
    let id = repo
        .commit(None, &sig, &sig, "mail", &tree, &parents)
        .unwrap();
    repo.reference("refs/heads/master", id, true, "mail")
        .unwrap();
    id
}

#[test]
fn an_archive_with_merges_is_ingested_whole_and_once() {
    let dir = tempdir("merges");
    let repo = git2::Repository::init_bare(dir.join("arch/m/0")).unwrap();
    let mail = |n: u32| format!("Message-ID: <merge-{n}@x>\nSubject: m{n}\n\nbody {n}\n");
    let root = commit_mail(&repo, &mail(1), &[]);
    let left = commit_mail(&repo, &mail(2), &[root]);
    let right = commit_mail(&repo, &mail(3), &[root]);
    let merge = commit_mail(&repo, &mail(4), &[left, right]);
    let url = format!("file://{}", dir.join("arch").display());
    let state = dir.join("state");
    let r = sync(&url, "m", &state, &[]);
    assert_eq!(
        (r["ingested"].as_u64(), r["duplicates"].as_u64()),
        (Some(4), Some(0))
    );
    commit_mail(&repo, &mail(5), &[merge]);
    let r = sync(&url, "m", &state, &[]);
    assert_eq!(
        (r["ingested"].as_u64(), r["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(count(&state, "SELECT count(*) FROM messages"), 5);
    let _ = std::fs::remove_dir_all(&dir);
}
