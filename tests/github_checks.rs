//! GitHub check runs and patchwork checks against local servers that speak
//! those APIs' wire formats (JSON bodies, Link pagination, Bearer JWTs,
//! installation tokens), asserting the exact requests lorebot makes; and
//! `lorebot watch --once` testing a pull request end to end with the demo
//! tree, real builds and QEMU runs.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lorebot::checks::github::{Auth, GitHub, Pull};
use lorebot::checks::patchwork::{self, SeriesCheck};
use lorebot::checks::{Annotation, CheckReport, Conclusion, Level};
use serde_json::{Value, json};

/// One request the mock received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: HashMap<String, String>,
    authorization: String,
    body: Value,
}

impl Seen {
    fn of(
        method: &Method,
        uri: &Uri,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Seen {
        Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: query.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }
}

#[derive(Default)]
struct Mock {
    seen: Vec<Seen>,
    /// Open pull requests of octo/linux.
    pulls: Vec<Value>,
    check_runs: Vec<Value>,
    /// The GitHub App's public key, to check the JWTs it signs.
    app_public_key: Option<Vec<u8>>,
    tokens_issued: u32,
    /// Seconds an installation token lives.
    token_lifetime: i64,
    port: u16,
}

type Shared = Arc<Mutex<Mock>>;

/// GitHub's REST API for the endpoints lorebot uses, on loopback.
struct MockGitHub {
    state: Shared,
    url: String,
    _runtime: tokio::runtime::Runtime,
}

/// Serves on a free loopback port, until the runtime is dropped, the
/// router `make` builds for that port.
fn serve(make: impl FnOnce(u16) -> Router) -> (tokio::runtime::Runtime, u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = make(port);
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, port)
}

impl MockGitHub {
    fn start(pulls: Vec<Value>) -> MockGitHub {
        let mut state = None;
        let (runtime, port) = serve(|port| {
            let shared: Shared = Arc::new(Mutex::new(Mock {
                pulls,
                token_lifetime: 3600,
                port,
                ..Mock::default()
            }));
            state = Some(shared.clone());
            Router::new().fallback(handle).with_state(shared)
        });
        MockGitHub {
            state: state.unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            _runtime: runtime,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// `METHOD /path` of each request, in order.
    fn calls(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut mock = state.lock().unwrap();
    let seen = Seen::of(&method, &uri, &query, &headers, &body);
    let (authorization, body, path) = (
        seen.authorization.clone(),
        seen.body.clone(),
        seen.path.clone(),
    );
    mock.seen.push(seen);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})),
        )
            .into_response()
    };
    // The app's endpoints take its JWT; the rest an installation or
    // personal token.
    let app_call = parts.first() == Some(&"app") || parts.last() == Some(&"installation");
    if let Some(key) = &mock.app_public_key {
        let ok = if app_call {
            authorization
                .strip_prefix("Bearer ")
                .is_some_and(|jwt| jwt_is_the_apps(jwt, key))
        } else {
            authorization
                .strip_prefix("Bearer ")
                .or_else(|| authorization.strip_prefix("token "))
                .is_some_and(|t| t.starts_with("ghs_"))
        };
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "Bad credentials"})),
            )
                .into_response();
        }
    }
    let base = format!("http://127.0.0.1:{}", mock.port);
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["repos", "octo", "linux", "installation"]) => {
            axum::Json(json!({"id": 42, "app_id": 4242, "target_type": "Organization"}))
                .into_response()
        }
        ("POST", ["app", "installations", "42", "access_tokens"]) => {
            mock.tokens_issued += 1;
            let expires = now() + mock.token_lifetime;
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "token": format!("ghs_{}", mock.tokens_issued),
                    "expires_at": lorebot::mail::rfc3339(expires),
                    "permissions": {"checks": "write", "pull_requests": "read"},
                    "repository_selection": "selected",
                })),
            )
                .into_response()
        }
        ("GET", ["repos", "octo", "linux", "pulls"]) => {
            // Two a page, whatever was asked, so that pagination is used.
            let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let items: Vec<Value> = mock
                .pulls
                .iter()
                .skip((page - 1) * 2)
                .take(2)
                .cloned()
                .collect();
            let mut response = axum::Json(Value::Array(items)).into_response();
            if page * 2 < mock.pulls.len() {
                let link = format!(
                    "<{base}/repos/octo/linux/pulls?state=open&per_page=100&page={}>; rel=\"next\"",
                    page + 1
                );
                response.headers_mut().insert("link", link.parse().unwrap());
            }
            response
        }
        ("GET", ["repos", "octo", "linux", "commits", sha, "check-runs"]) => {
            let runs: Vec<Value> = mock
                .check_runs
                .iter()
                .filter(|r| r["head_sha"] == *sha)
                .filter(|r| query.get("check_name").is_none_or(|n| r["name"] == **n))
                .cloned()
                .collect();
            axum::Json(json!({"total_count": runs.len(), "check_runs": runs})).into_response()
        }
        ("POST", ["repos", "octo", "linux", "check-runs"]) => {
            let id = 1000 + mock.check_runs.len() as u64;
            let mut run = body.clone();
            run["id"] = json!(id);
            run["url"] = json!(format!("{base}/repos/octo/linux/check-runs/{id}"));
            mock.check_runs.push(run.clone());
            (StatusCode::CREATED, axum::Json(run)).into_response()
        }
        ("PATCH", ["repos", "octo", "linux", "check-runs", id]) => {
            let Some(run) = mock
                .check_runs
                .iter_mut()
                .find(|r| r["id"].as_u64() == id.parse().ok())
            else {
                return not_found();
            };
            for (k, v) in body.as_object().into_iter().flatten() {
                run[k] = v.clone();
            }
            axum::Json(run.clone()).into_response()
        }
        _ => not_found(),
    }
}

fn jwt_is_the_apps(jwt: &str, public_pem: &[u8]) -> bool {
    use octocrab::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let Ok(key) = DecodingKey::from_rsa_pem(public_pem) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    // GitHub takes the app id as a number or a string.
    validation.set_required_spec_claims(&["exp", "iat"]);
    decode::<Value>(jwt, &key, &validation)
        .is_ok_and(|data| data.claims["iss"] == json!(4242) || data.claims["iss"] == json!("4242"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A pull request as GitHub lists it (the fields lorebot reads, and some
/// it does not).
fn pull_json(number: u64, head: &str, base: &str, clone_url: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/octo/linux/pulls/{number}"),
        "id": 100 + number,
        "node_id": "PR_kwDO",
        "html_url": format!("https://github.com/octo/linux/pull/{number}"),
        "number": number,
        "state": "open",
        "locked": false,
        "title": format!("mm: change {number}"),
        "user": {"login": "dev", "id": 7, "type": "User"},
        "draft": false,
        "head": {"label": "dev:topic", "ref": "topic", "sha": head,
                 "repo": {"full_name": "dev/linux", "clone_url": "https://github.com/dev/linux.git"}},
        "base": {"label": "octo:master", "ref": "master", "sha": base,
                 "repo": {"full_name": "octo/linux", "clone_url": clone_url}},
    })
}

fn annotation(i: u32) -> Annotation {
    Annotation {
        path: "mm/filemap.c".to_owned(),
        start_line: i,
        end_line: i,
        annotation_level: Level::Failure,
        title: format!("crash {i}"),
        message: format!("crash {i} in the runs of this commit"),
        raw_details: None,
    }
}

#[test]
fn check_run_requests_with_a_token() {
    let mut pulls: Vec<Value> = (1..=3)
        .map(|n| pull_json(n, &format!("{n:040x}"), &"b".repeat(40), "/srv/linux.git"))
        .collect();
    // A pull request whose base repository was deleted: left out, the
    // others listed.
    let mut orphan = pull_json(4, &"f".repeat(40), &"b".repeat(40), "/x");
    orphan["base"]["repo"] = Value::Null;
    pulls.insert(1, orphan);
    let mock = MockGitHub::start(pulls);
    let github = GitHub::new(&mock.url, Auth::Token("t0ken".to_owned())).unwrap();

    let open = github.open_pulls("octo/linux").unwrap();
    assert_eq!(open.len(), 3, "every page is read");
    assert_eq!(open.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        open[2],
        Pull {
            number: 3,
            title: "mm: change 3".to_owned(),
            author: Some("dev".to_owned()),
            url: "https://github.com/octo/linux/pull/3".to_owned(),
            head_sha: format!("{:040x}", 3),
            base_sha: "b".repeat(40),
            base_ref: "master".to_owned(),
            clone_url: "/srv/linux.git".to_owned(),
        }
    );

    let head = format!("{:040x}", 1);
    let id = github
        .start(
            "octo/linux",
            &head,
            "lorebot/demo",
            "17",
            Some("https://lorebot.example.org"),
        )
        .unwrap();
    let again = github
        .start("octo/linux", &head, "lorebot/demo", "17", None)
        .unwrap();
    assert_eq!(id, again, "a restarted job finds its check run");

    let report = CheckReport {
        conclusion: Conclusion::Failure,
        title: "STILL REPRODUCES: base 3/8, head 2/2".to_owned(),
        summary: "**STILL REPRODUCES**\n".to_owned(),
        annotations: (1..=120).map(annotation).collect(),
    };
    github.complete("octo/linux", id, &report).unwrap();

    assert_eq!(
        mock.calls(),
        [
            "GET /repos/octo/linux/pulls",
            "GET /repos/octo/linux/pulls",
            "GET /repos/octo/linux/commits/0000000000000000000000000000000000000001/check-runs",
            "POST /repos/octo/linux/check-runs",
            "GET /repos/octo/linux/commits/0000000000000000000000000000000000000001/check-runs",
            "PATCH /repos/octo/linux/check-runs/1000",
            "PATCH /repos/octo/linux/check-runs/1000",
            "PATCH /repos/octo/linux/check-runs/1000",
        ]
    );
    let seen = mock.seen();
    assert!(
        seen.iter().all(|s| s.authorization == "Bearer t0ken"),
        "{:?}",
        seen.iter().map(|s| &s.authorization).collect::<Vec<_>>()
    );
    assert_eq!(seen[0].query["state"], "open");
    assert_eq!(seen[1].query["page"], "2");
    assert_eq!(seen[2].query["check_name"], "lorebot/demo");

    let created = &seen[3].body;
    assert_eq!(created["name"], "lorebot/demo");
    assert_eq!(created["head_sha"], head.as_str());
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["external_id"], "17");
    assert_eq!(created["details_url"], "https://lorebot.example.org");
    assert!(created["started_at"].as_str().unwrap().ends_with('Z'));

    // The conclusion with the first 50 annotations, then 50, then 20.
    let updates: Vec<&Value> = seen[5..].iter().map(|s| &s.body).collect();
    assert_eq!(updates[0]["status"], "completed");
    assert_eq!(updates[0]["conclusion"], "failure");
    assert!(updates[0]["completed_at"].is_string());
    for (update, count, first) in [
        (updates[0], 50, 1),
        (updates[1], 50, 51),
        (updates[2], 20, 101),
    ] {
        let output = &update["output"];
        assert_eq!(output["title"], "STILL REPRODUCES: base 3/8, head 2/2");
        assert_eq!(output["summary"], "**STILL REPRODUCES**\n");
        let annotations = output["annotations"].as_array().unwrap();
        assert_eq!(annotations.len(), count);
        assert_eq!(annotations[0]["start_line"], first);
        assert_eq!(annotations[0]["path"], "mm/filemap.c");
        assert_eq!(annotations[0]["annotation_level"], "failure");
    }
    assert!(
        updates[1].get("conclusion").is_none(),
        "only the first update concludes"
    );
}

/// A new RSA private key, as GitHub gives an app, at `path`.
fn rsa_key(path: &Path) -> PathBuf {
    support::run(
        Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(path)
            .arg("2048"),
    );
    path.to_owned()
}

/// lorebot as GitHub App 4242 with the private key at `key`.
fn app(mock: &MockGitHub, key: &Path) -> GitHub {
    let auth = Auth::App {
        id: 4242,
        key_pem: std::fs::read(key).unwrap(),
        key_path: key.display().to_string(),
    };
    GitHub::new(&mock.url, auth).unwrap()
}

#[test]
fn app_signs_in_with_its_key_and_renews_the_installation_token() {
    let dir = support::tempdir("github-app");
    let key = rsa_key(&dir.join("app.pem"));
    let public = support::run(
        Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key),
    );
    let mock = MockGitHub::start(vec![pull_json(5, &"c".repeat(40), &"d".repeat(40), "/x")]);
    {
        let mut state = mock.state.lock().unwrap();
        state.app_public_key = Some(public);
        // Within octocrab's 30 s margin: each use needs a new token.
        state.token_lifetime = 20;
    }
    let github = app(&mock, &key);
    assert_eq!(github.open_pulls("octo/linux").unwrap()[0].number, 5);
    assert_eq!(github.open_pulls("octo/linux").unwrap().len(), 1);
    assert_eq!(
        mock.calls(),
        [
            "GET /repos/octo/linux/installation",
            "POST /app/installations/42/access_tokens",
            "GET /repos/octo/linux/pulls",
            "POST /app/installations/42/access_tokens",
            "GET /repos/octo/linux/pulls",
        ]
    );
    let seen = mock.seen();
    assert_eq!(seen[2].authorization, "Bearer ghs_1");
    assert_eq!(
        seen[4].authorization, "Bearer ghs_2",
        "the expiring token was renewed"
    );

    // A key that is not the app's is refused by GitHub, and said so.
    let other = rsa_key(&dir.join("other.pem"));
    let impostor = app(&mock, &other);
    let err = impostor.open_pulls("octo/linux").unwrap_err().to_string();
    assert!(
        err.contains("installation on octo/linux") && err.contains("401"),
        "{err}"
    );
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let bad = app(&mock, &garbage);
    let err = bad.open_pulls("octo/linux").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("GitHub App private key {}:", garbage.display())),
        "{err}"
    );
}

/// Patchwork's API for the two endpoints lorebot uses.
async fn patchwork_handle(
    State(state): State<Arc<Mutex<Vec<Seen>>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen::of(&method, &uri, &query, &headers, &body);
    let (authorization, body, path) = (
        seen.authorization.clone(),
        seen.body.clone(),
        seen.path.clone(),
    );
    state.lock().unwrap().push(seen);
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/patches/") => {
            let patches: Vec<Value> = [("p1@example.org", 11), ("p2@example.org", 12)]
                .iter()
                .filter(|(msgid, _)| query.get("msgid").is_some_and(|m| m == msgid))
                .map(|(msgid, id)| {
                    json!({"id": id, "url": format!("/api/patches/{id}/"),
                           "msgid": format!("<{msgid}>"), "name": "mm: fix", "state": "new"})
                })
                .collect();
            axum::Json(Value::Array(patches)).into_response()
        }
        ("POST", p) if p.starts_with("/api/patches/") && p.ends_with("/checks/") => {
            if authorization != "Token pw-secret" {
                return (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"detail": "You do not have permission."})),
                )
                    .into_response();
            }
            let mut check = body.clone();
            check["id"] = json!(1);
            (StatusCode::CREATED, axum::Json(check)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[test]
fn patchwork_gets_a_check_on_each_patch() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let router = Router::new()
        .fallback(patchwork_handle)
        .with_state(seen.clone());
    let (_runtime, port) = serve(|_| router);
    let url = format!("http://127.0.0.1:{port}");

    let check = SeriesCheck {
        url: url.clone(),
        project: Some("linux-mm".to_owned()),
        msgids: vec!["p1@example.org".to_owned(), "p2@example.org".to_owned()],
        state: patchwork::State::Success,
        context: "lorebot-filemap-stall".to_owned(),
        description: "FIXED: after 12 clean runs".to_owned(),
        target_url: Some("https://lorebot.example.org/series/3".to_owned()),
    };
    patchwork::post(&check, "pw-secret").unwrap();
    let requests = seen.lock().unwrap().clone();
    let calls: Vec<String> = requests
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /api/patches/",
            "POST /api/patches/11/checks/",
            "GET /api/patches/",
            "POST /api/patches/12/checks/",
        ]
    );
    assert_eq!(requests[0].query["msgid"], "p1@example.org");
    assert_eq!(requests[0].query["project"], "linux-mm");
    assert_eq!(
        requests[1].body,
        json!({
            "state": "success",
            "context": "lorebot-filemap-stall",
            "description": "FIXED: after 12 clean runs",
            "target_url": "https://lorebot.example.org/series/3",
        })
    );

    let err = patchwork::post(&check, "wrong").unwrap_err().to_string();
    assert!(
        err.contains("/api/patches/11/checks/") && err.contains("403"),
        "{err}"
    );
    let unknown = SeriesCheck {
        msgids: vec!["nobody@example.org".to_owned()],
        ..check
    };
    let err = patchwork::post(&unknown, "pw-secret")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no patch with Message-ID <nobody@example.org>"),
        "{err}"
    );
}

/// A repository standing for octo/linux on GitHub: the demo tree's base
/// (Linux 6.1) on master, and the demo regression as pull request 1.
fn octo_repo(dir: &Path) -> (PathBuf, String, String) {
    let demo = support::demo_tree();
    let repo = dir.join("octo-linux.git");
    support::run(
        Command::new("git")
            .args(["clone", "-q", "--bare", "--shared"])
            .arg(&demo)
            .arg(&repo),
    );
    let git = |args: &[&str]| {
        let out = support::run(Command::new("git").arg("--git-dir").arg(&repo).args(args));
        String::from_utf8_lossy(&out).trim().to_owned()
    };
    let head = git(&["rev-parse", "master"]);
    let base = git(&["rev-parse", "master^"]);
    git(&["update-ref", "refs/heads/master", &base]);
    git(&["update-ref", "refs/pull/1/head", &head]);
    (repo, head, base)
}

#[test]
fn watch_tests_a_pull_request_and_concludes_its_check_run() {
    let dir = support::tempdir("github-watch");
    let (repo, head, base) = octo_repo(&dir);
    let mock = MockGitHub::start(vec![pull_json(
        1,
        &head,
        &base,
        &repo.display().to_string(),
    )]);
    // The regression as a pull request: its base never stalls, its head
    // does, about 4 runs in 10. Any crash counts.
    let job = support::demo_job(
        &dir,
        &[
            ("lists: [demo]", "github: octo/linux"),
            ("runs: 40", "runs: 12"),
        ],
    );
    std::fs::write(dir.join("token"), "t0ken\n").unwrap();
    let config = dir.join("watch.yaml");
    std::fs::write(
        &config,
        format!(
            "lore: http://127.0.0.1:9\nlists: {{}}\njobs: [{}]\n\
             from: lorebot <bot@example.org>\ndata_dir: data\nwork_dir: {}\n\
             web_url: https://lorebot.example.org\n\
             github:\n  api: {}\n  token_file: token\n",
            job.display(),
            support::cache_dir().join("test-data").display(),
            mock.url
        ),
    )
    .unwrap();
    let watch_once = || {
        let out = Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["watch", "--once", "--config"])
            .arg(&config)
            .env("LOREBOT_ACCEL", "tcg")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        println!("{log}");
        assert!(out.status.success(), "{log}");
        log
    };
    let log = watch_once();
    assert!(
        log.contains("octo/linux: 1 job(s) queued for filemap-stall"),
        "{log}"
    );
    assert!(log.contains("github check sent"), "{log}");

    let calls = mock.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("POST")).count(),
        1,
        "one check run: {calls:?}"
    );
    let runs = mock.state.lock().unwrap().check_runs.clone();
    let run = &runs[0];
    assert_eq!(run["name"], "lorebot/filemap-stall");
    assert_eq!(run["head_sha"], head.as_str());
    assert_eq!(run["details_url"], "https://lorebot.example.org/pulls/1");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "failure", "{run:#}");
    let title = run["output"]["title"].as_str().unwrap();
    assert!(
        title.starts_with("CRASHES: the head crashed in "),
        "{title}"
    );
    assert!(title.ends_with("its base in none of 12"), "{title}");
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("Verdict: INCONCLUSIVE"), "{summary}");
    assert!(
        summary.contains("base (unpatched)"),
        "the mail's table: {summary}"
    );
    assert!(
        summary.contains(&format!("(base {})", &base[..12])),
        "{summary}"
    );
    assert!(
        summary.contains("Logs: https://lorebot.example.org/pulls/1"),
        "{summary}"
    );

    // The stall is pinned to filemap_get_read_batch()'s definition at the
    // head commit.
    let annotation = &run["output"]["annotations"][0];
    assert_eq!(annotation["path"], "mm/filemap.c", "{run:#}");
    assert_eq!(annotation["annotation_level"], "failure");
    assert_eq!(
        annotation["title"],
        "INFO: rcu detected stall in filemap_get_read_batch"
    );
    let line = annotation["start_line"].as_u64().unwrap() as usize;
    let source = support::run(
        Command::new("git")
            .arg("--git-dir")
            .arg(&repo)
            .args(["show", &format!("{head}:mm/filemap.c")]),
    );
    let text = String::from_utf8_lossy(&source);
    let defined = text.lines().nth(line - 1).unwrap_or("");
    assert!(
        defined.contains("filemap_get_read_batch("),
        "line {line}: {defined:?}"
    );

    let status = support::run(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["status", "--config"])
            .arg(&config),
    );
    let status = String::from_utf8_lossy(&status);
    assert!(
        status.contains("#1 mm: change 1")
            && status.contains("octo/linux, https://github.com/octo/linux/pull/1")
            && status.contains("github check sent"),
        "{status}"
    );

    // Nothing new the second time.
    let before = mock.calls().len();
    let log = watch_once();
    let after: Vec<String> = mock.calls()[before..].to_vec();
    assert!(
        after
            .iter()
            .all(|c| c.starts_with("GET /repos/octo/linux/pulls")),
        "only the listing: {after:?} {log}"
    );
}

/// Posts a webhook delivery signed with `secret` to `lorebot serve`: the
/// status and the body.
fn deliver(url: &str, secret: &[u8], event: &str, body: &Value) -> (u16, String) {
    use hmac::Mac;
    let body = serde_json::to_vec(body).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(&body);
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = reqwest::blocking::Client::new()
        .post(url)
        .header("X-GitHub-Event", event)
        .header("X-Hub-Signature-256", format!("sha256={signature}"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn webhook_deliveries_queue_new_heads_once_signed() {
    let dir = support::tempdir("github-webhook");
    let fragment = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel-configs/vm-base.config");
    let job = dir.join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "name: pr\ngithub: octo/linux\ntree:\n  url: /srv/linux\nkernel:\n  base: tinyconfig\n  \
             fragments: [{}]\nreproducer:\n  script: echo hi\n  timeout: 30s\n",
            fragment.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("token"), "t0ken\n").unwrap();
    std::fs::write(dir.join("hook-secret"), "It's a Secret to Everybody\n").unwrap();
    let config = dir.join("watch.yaml");
    std::fs::write(
        &config,
        format!(
            "lore: http://127.0.0.1:9\nlists: {{}}\njobs: [{}]\nfrom: lorebot <bot@example.org>\n\
             data_dir: data\ngithub:\n  token_file: token\n  webhook_secret_file: hook-secret\n",
            job.display()
        ),
    )
    .unwrap();
    let db = dir.join("data/lorebot.sqlite3");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    drop(lorebot::store::Store::open(&db).unwrap());
    let port = support::free_port();
    let _server = support::Server::start(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(&config),
        port,
    );
    let url = format!("http://127.0.0.1:{port}/github/webhook");
    let secret = b"It's a Secret to Everybody";
    let delivery = |action: &str, head: &str| {
        json!({
            "action": action,
            "number": 7,
            "pull_request": pull_json(7, head, &"b".repeat(40), "https://github.com/octo/linux.git"),
            "repository": {"full_name": "octo/linux", "clone_url": "https://github.com/octo/linux.git"},
            "sender": {"login": "dev"},
        })
    };
    let head = "a".repeat(40);
    let (status, body) = deliver(&url, secret, "pull_request", &delivery("opened", &head));
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["queued"], 1);
    assert_eq!(answer["pull_request"], 7);
    // GitHub delivers again when unsure: nothing is queued twice.
    let (status, body) = deliver(&url, secret, "pull_request", &delivery("opened", &head));
    assert_eq!(
        (status, body.contains("\"queued\":0")),
        (202, true),
        "{body}"
    );
    // A push is a new head.
    let (_, body) = deliver(
        &url,
        secret,
        "pull_request",
        &delivery("synchronize", &"c".repeat(40)),
    );
    assert!(body.contains("\"queued\":1"), "{body}");

    let (status, _) = deliver(
        &url,
        b"guess",
        "pull_request",
        &delivery("opened", &"d".repeat(40)),
    );
    assert_eq!(
        status, 401,
        "a delivery not signed with the secret is refused"
    );
    let (status, body) = deliver(
        &url,
        secret,
        "ping",
        &json!({"zen": "Keep it logically awesome."}),
    );
    assert_eq!((status, body.as_str()), (200, "ignored\n"));
    let (status, _) = deliver(
        &url,
        secret,
        "pull_request",
        &delivery("closed", &"e".repeat(40)),
    );
    assert_eq!(status, 200);
    let (status, body) = deliver(&url, secret, "pull_request", &json!({"action": "opened"}));
    assert_eq!(status, 400, "{body}");

    let mut store = lorebot::store::Store::open(&db).unwrap();
    let mut heads = Vec::new();
    while let Some(job) = store.claim(1).unwrap() {
        let pull = job.pull.unwrap();
        assert_eq!((pull.repo.as_str(), pull.pull.number), ("octo/linux", 7));
        heads.push((pull.pull.head_sha.chars().next().unwrap(), pull.superseded));
    }
    assert_eq!(heads, [('a', true), ('c', false)]);
}
