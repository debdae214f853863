//! `lorebot serve`: the maintainer's patch queue. Every series the bot has
//! seen, newest first, with the state of its latest test; a page per
//! series with its tests, runs, console logs and the reply sent; the same
//! as JSON (`/api/series`, `/api/series/{id}`) and an Atom feed of
//! verdicts. Plain server-rendered HTML: no JavaScript.

pub mod kcidb;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::mail::rfc3339;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use thiserror::Error;

use crate::lore::message_url;
use crate::store::{
    JobDetail, LatestTest, PullDetail, PullRow, RunRow, SeriesDetail, SeriesFilter, SeriesRow,
    Store, StoreError,
};

/// Series per page.
const PER_PAGE: u32 = 50;

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Shared = Arc<Mutex<Store>>;

/// GitHub's `pull_request` webhook: deliveries signed with `secret`
/// queue their new heads for the jobs that follow the repository.
pub struct Webhook {
    pub secret: Vec<u8>,
    /// (repository, job) pairs.
    pub jobs: Vec<(String, String)>,
}

/// Serves the queue of the database at `db` on `addr` until killed, and
/// GitHub's webhook at `/github/webhook` when `webhook` is set.
pub fn serve(addr: SocketAddr, db: &Path, webhook: Option<Webhook>) -> Result<(), QueueError> {
    let store = Store::open(db)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| QueueError::Listen { addr, source })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| QueueError::Listen { addr, source })?;
        tracing::info!(%addr, "serving the queue");
        let store = Arc::new(Mutex::new(store));
        let mut app = router(store.clone());
        if let Some(webhook) = webhook {
            app = app.merge(
                Router::new()
                    .route("/github/webhook", post(github_webhook))
                    .with_state(Arc::new((store, webhook))),
            );
        }
        axum::serve(listener, app)
            .await
            .map_err(|source| QueueError::Listen { addr, source })
    })
}

fn router(store: Shared) -> Router {
    Router::new()
        .route("/", get(queue_page))
        .route("/series/{id}", get(series_page))
        .route("/runs/{id}/log", get(run_log))
        .route("/api/series", get(api_series))
        .route("/api/series/{id}", get(api_series_detail))
        .route("/pulls", get(pulls_page))
        .route("/pulls/{id}", get(pull_page))
        .route("/api/pulls", get(api_pulls))
        .route("/api/pulls/{id}", get(api_pull_detail))
        .route("/feed.atom", get(feed))
        .with_state(store)
}

/// A webhook delivery: a new pull request head is queued for each job
/// that follows its repository.
async fn github_webhook(
    State(hook): State<Arc<(Shared, Webhook)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::checks::github::{WebhookError, webhook_pull};
    let (store, webhook) = &*hook;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (repo, pull) = match webhook_pull(
        &webhook.secret,
        header("x-hub-signature-256"),
        header("x-github-event"),
        &body,
    ) {
        Ok(Some(delivery)) => delivery,
        Ok(None) => return (StatusCode::OK, "ignored\n").into_response(),
        Err(e @ WebhookError::Signature) => {
            return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
        }
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
    let mut queued = 0;
    for (_, job) in webhook.jobs.iter().filter(|(r, _)| *r == repo) {
        match store.queue_pulls(&repo, job, std::slice::from_ref(&pull), now) {
            Ok(n) => queued += n,
            Err(e) => return failure(e),
        }
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({
            "repository": repo,
            "pull_request": pull.number,
            "head": pull.head_sha,
            "queued": queued,
        })),
    )
        .into_response()
}

/// The queue's query string.
#[derive(Debug, Default, Deserialize)]
struct Filter {
    list: Option<String>,
    state: Option<String>,
    author: Option<String>,
    /// 1-based.
    page: Option<u32>,
}

impl Filter {
    fn store_filter(&self) -> SeriesFilter {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        SeriesFilter {
            list: given(&self.list),
            state: given(&self.state),
            author: given(&self.author),
            page: self.page.unwrap_or(1).saturating_sub(1),
            per_page: PER_PAGE,
        }
    }
}

/// A store error as a 500 page (it is the server's fault, not the URL's).
fn failure(e: StoreError) -> Response {
    tracing::error!(error = %e, "queue page");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("database: {e}\n"),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("no {what}\n")).into_response()
}

fn with_store<T>(
    store: &Shared,
    f: impl FnOnce(&Store) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    f(&store)
}

async fn queue_page(State(store): State<Shared>, Query(filter): Query<Filter>) -> Response {
    let f = filter.store_filter();
    match with_store(&store, |s| s.series_rows(&f)) {
        Ok((rows, total)) => page(
            "lorebot: patch queue",
            queue_html(&filter, &f, &rows, total),
        ),
        Err(e) => failure(e),
    }
}

async fn series_page(State(store): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    match with_store(&store, |s| s.series_detail(id)) {
        Ok(Some(d)) => page(&format!("lorebot: {}", d.series.subject), series_html(&d)),
        Ok(None) => not_found("such series"),
        Err(e) => failure(e),
    }
}

async fn api_series(State(store): State<Shared>, Query(filter): Query<Filter>) -> Response {
    let f = filter.store_filter();
    match with_store(&store, |s| s.series_rows(&f)) {
        Ok((rows, total)) => axum::Json(serde_json::json!({
            "total": total,
            "page": f.page + 1,
            "per_page": f.per_page,
            "series": rows,
        }))
        .into_response(),
        Err(e) => failure(e),
    }
}

async fn api_series_detail(State(store): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    match with_store(&store, |s| s.series_detail(id)) {
        Ok(Some(d)) => axum::Json(d).into_response(),
        Ok(None) => not_found("such series"),
        Err(e) => failure(e),
    }
}

async fn pulls_page(State(store): State<Shared>, Query(filter): Query<Filter>) -> Response {
    let f = filter.store_filter();
    match with_store(&store, |s| s.pull_rows(&f)) {
        Ok((rows, total)) => page(
            "lorebot: pull requests",
            pulls_html(&filter, &f, &rows, total),
        ),
        Err(e) => failure(e),
    }
}

async fn pull_page(State(store): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    match with_store(&store, |s| s.pull_detail(id)) {
        Ok(Some(d)) => page(
            &format!(
                "lorebot: {}#{} {}",
                d.pull.repo, d.pull.number, d.pull.title
            ),
            pull_html(&d),
        ),
        Ok(None) => not_found("such pull request"),
        Err(e) => failure(e),
    }
}

async fn api_pulls(State(store): State<Shared>, Query(filter): Query<Filter>) -> Response {
    let f = filter.store_filter();
    match with_store(&store, |s| s.pull_rows(&f)) {
        Ok((rows, total)) => axum::Json(serde_json::json!({
            "total": total,
            "page": f.page + 1,
            "per_page": f.per_page,
            "pulls": rows,
        }))
        .into_response(),
        Err(e) => failure(e),
    }
}

async fn api_pull_detail(State(store): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    match with_store(&store, |s| s.pull_detail(id)) {
        Ok(Some(d)) => axum::Json(d).into_response(),
        Ok(None) => not_found("such pull request"),
        Err(e) => failure(e),
    }
}

async fn run_log(State(store): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    let path = match with_store(&store, |s| s.run_log_path(id)) {
        Ok(Some(p)) => PathBuf::from(p),
        Ok(None) => return not_found("log for this run"),
        Err(e) => return failure(e),
    };
    match std::fs::read(&path) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response(),
        Err(e) => (
            StatusCode::GONE,
            format!("the log {} is gone: {e}\n", path.display()),
        )
            .into_response(),
    }
}

async fn feed(State(store): State<Shared>, headers: HeaderMap) -> Response {
    // Atom wants absolute links: the server as the client reached it.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    match with_store(&store, |s| s.verdicts(50)) {
        Ok(verdicts) => (
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            atom(&format!("http://{host}"), &verdicts),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

fn page(title: &str, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="alternate" type="application/atom+xml" title="verdicts" href="/feed.atom";
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html.into_string(),
    )
        .into_response()
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;max-width:80em}\
table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;vertical-align:top}\
tr:nth-child(even){background:#f4f4f4}pre{background:#f8f8f8;padding:.6em;overflow-x:auto}\
.FIXED{color:#060;font-weight:bold}.STILL-REPRODUCES,.BUILD-FAILED,.APPLY-FAILED{color:#a00;font-weight:bold}\
form{margin:1em 0}";

/// The state and runs cells of a row.
fn state_cells(latest: &LatestTest) -> Markup {
    html! {
        td class=(state_class(&latest.state)) { (latest.state) }
        td { @if latest.job.is_some() { (latest.base_runs) " / " (latest.patched_runs) } }
    }
}

/// A state as a CSS class: `STILL REPRODUCES` -> `STILL-REPRODUCES`.
fn state_class(state: &str) -> String {
    state.replace(' ', "-")
}

fn lore_link(s: &SeriesRow) -> String {
    message_url(&s.lore, &s.list, &s.msgid)
}

/// The filter form and the page count above a listing at `path`; `place`
/// names what the `list` filter holds.
fn filter_form(path: &str, place: &str, filter: &Filter) -> Markup {
    html! {
        form method="get" action=(path) {
            label { (place) " " input name="list" value=(filter.list.as_deref().unwrap_or("")); }
            " "
            label { "state " input name="state" value=(filter.state.as_deref().unwrap_or("")); }
            " "
            label { "author " input name="author" value=(filter.author.as_deref().unwrap_or("")); }
            " "
            button type="submit" { "filter" }
        }
    }
}

/// Links to the newer and older pages of a listing at `path`.
fn pager(path: &str, filter: &Filter, f: &SeriesFilter, total: u64) -> Markup {
    let (page, pages) = page_count(f, total);
    let link = |to: u64| {
        let mut q = vec![format!("page={to}")];
        for (k, v) in [
            ("list", &filter.list),
            ("state", &filter.state),
            ("author", &filter.author),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.push(format!("{k}={}", url_escape(v)));
            }
        }
        format!("{path}?{}", q.join("&"))
    };
    html! {
        p {
            @if page > 1 { a href=(link(page - 1)) { "newer" } " " }
            @if page < pages { a href=(link(page + 1)) { "older" } }
        }
    }
}

/// The page shown (1-based) and how many there are.
fn page_count(f: &SeriesFilter, total: u64) -> (u64, u64) {
    (
        u64::from(f.page) + 1,
        total.div_ceil(u64::from(f.per_page)).max(1),
    )
}

fn queue_html(filter: &Filter, f: &SeriesFilter, rows: &[SeriesRow], total: u64) -> Markup {
    let (page, pages) = page_count(f, total);
    html! {
        h1 { "Patch queue" }
        p { a href="/pulls" { "pull requests" } }
        (filter_form("/", "list", filter))
        p { (total) " series; page " (page) " of " (pages) }
        table {
            thead { tr { th { "series" } th { "list" } th { "author" } th { "version" } th { "state" } th { "runs (base / patched)" } th { "thread" } } }
            tbody {
                @for s in rows {
                    tr {
                        td { a href={ "/series/" (s.id) } { (s.subject) } }
                        td { (s.list) }
                        td { (s.author.as_deref().unwrap_or("")) }
                        td { "v" (s.version) ", " (s.total) " patch(es)" }
                        (state_cells(&s.latest))
                        td { a href=(lore_link(s)) { "lore" } }
                    }
                }
            }
        }
        (pager("/", filter, f, total))
        p { a href="/feed.atom" { "verdicts (Atom)" } " · " a href="/api/series" { "JSON" } }
    }
}

fn pulls_html(filter: &Filter, f: &SeriesFilter, rows: &[PullRow], total: u64) -> Markup {
    let (page, pages) = page_count(f, total);
    html! {
        p { a href="/" { "← patch queue" } }
        h1 { "Pull requests" }
        (filter_form("/pulls", "repository", filter))
        p { (total) " head(s); page " (page) " of " (pages) }
        table {
            thead { tr { th { "pull request" } th { "repository" } th { "author" } th { "head" } th { "state" } th { "runs (base / head)" } th { "GitHub" } } }
            tbody {
                @for p in rows {
                    tr {
                        td { a href={ "/pulls/" (p.id) } { "#" (p.number) " " (p.title) } }
                        td { (p.repo) }
                        td { (p.author.as_deref().unwrap_or("")) }
                        td { code { (p.head.get(..12).unwrap_or(&p.head)) } }
                        (state_cells(&p.latest))
                        td { a href=(p.url) { "pull request" } }
                    }
                }
            }
        }
        (pager("/pulls", filter, f, total))
        p { a href="/api/pulls" { "JSON" } }
    }
}

fn pull_html(d: &PullDetail) -> Markup {
    let p = &d.pull;
    html! {
        p { a href="/pulls" { "← pull requests" } }
        h1 { "#" (p.number) " " (p.title) }
        p {
            (p.repo) ", by " (p.author.as_deref().unwrap_or("?")) ", head " code { (p.head) }
            " onto " (p.base_ref) ": " a href=(p.url) { "pull request on GitHub" }
            " · state " span class=(state_class(&p.latest.state)) { (p.latest.state) }
        }
        (jobs_html(&d.jobs))
    }
}

fn series_html(d: &SeriesDetail) -> Markup {
    let s = &d.series;
    html! {
        p { a href="/" { "← queue" } }
        h1 { (s.subject) }
        p {
            "v" (s.version) ", " (s.total) " patch(es) by " (s.author.as_deref().unwrap_or("?"))
            " on " (s.list) ": " a href=(lore_link(s)) { "thread on lore" }
            " · state " span class=(state_class(&s.latest.state)) { (s.latest.state) }
        }
        (jobs_html(&d.jobs))
    }
}

/// The tests of a series or pull request: each one's verdict, time, runs
/// with their console logs, reply and checks.
fn jobs_html(jobs: &[JobDetail]) -> Markup {
    html! {
        @if jobs.is_empty() { p { "Not tested yet." } }
        @for j in jobs {
            h2 {
                "Test " (j.id) ": " (j.job) " — "
                span class=(state_class(j.verdict.as_deref().unwrap_or(&j.state))) {
                    (j.verdict.as_deref().unwrap_or(j.stage.as_deref().unwrap_or(&j.state)))
                }
            }
            @if let Some(c) = &j.command { p { "Asked for in " code { (c) } } }
            @if let Some(detail) = &j.detail { p { (detail) } }
            @if let Some(t) = &j.timing {
                p { "Time: " (secs(t, "total_s")) " in all: kernel builds " (secs(t, "build_s")) ", guests " (secs(t, "guest_s")) }
            }
            @if !j.runs.is_empty() {
                table {
                    thead { tr { th { "arm" } th { "run" } th { "outcome" } th { "why" } th { "seconds" } th { "kernel" } th { "console" } } }
                    tbody {
                        @for r in &j.runs {
                            @let run = recorded(r);
                            tr {
                                td { (r.arm) }
                                td { (r.seq) }
                                td { (r.outcome) }
                                td { (run.as_ref().map_or("", |v| v.reason.as_str())) }
                                td { (run.as_ref().map_or(String::new(), |v| format!("{:.0}", v.duration_s))) }
                                td { code { (r.commit.get(..12).unwrap_or(&r.commit)) } }
                                td { @if r.log_path.is_some() { a href={ "/runs/" (r.id) "/log" } { "log" } } }
                            }
                        }
                    }
                }
            }
            @if let Some(reply) = &j.reply {
                h3 { "Reply" @if j.reply_sent.is_none() { " (not sent yet)" } }
                pre { (reply) }
            }
            @for c in &j.checks {
                h3 {
                    (c.forge) " check"
                    @if c.sent.is_none() { " (not sent yet" @if let Some(e) = &c.error { ": " (e) } ")" }
                }
                @if let Some(title) = c.payload["title"].as_str() {
                    p { (c.payload["conclusion"].as_str().unwrap_or("")) ": " (title) }
                }
                @if let Some(state) = c.payload["state"].as_str() {
                    p { (state) ": " (c.payload["description"].as_str().unwrap_or("")) }
                }
                @if let Some(annotations) = c.payload["annotations"].as_array().filter(|a| !a.is_empty()) {
                    ul {
                        @for a in annotations {
                            li {
                                code { (a["path"].as_str().unwrap_or("")) ":" (a["start_line"].as_u64().unwrap_or(0)) }
                                " " (a["annotation_level"].as_str().unwrap_or("")) ": " (a["title"].as_str().unwrap_or(""))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A run as the bot recorded it, whole.
fn recorded(r: &RunRow) -> Option<crate::vm::Run> {
    serde_json::from_str(r.run.as_deref()?).ok()
}

fn secs(timing: &serde_json::Value, field: &str) -> String {
    timing[field]
        .as_f64()
        .map_or_else(|| "?".to_owned(), |s| format!("{s:.0} s"))
}

/// Percent-encodes a query value.
fn url_escape(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Atom feed of verdicts; `base` is the server's own URL.
fn atom(base: &str, verdicts: &[(SeriesRow, i64)]) -> String {
    let updated = verdicts.first().map_or(0, |(_, t)| *t);
    let feed = html! {
        feed xmlns="http://www.w3.org/2005/Atom" {
            id { (base) "/feed.atom" }
            title { "lorebot verdicts" }
            link rel="self" href={ (base) "/feed.atom" } {}
            updated { (rfc3339(updated)) }
            @for (s, when) in verdicts {
                @let url = format!("{base}/series/{}", s.id);
                entry {
                    id { (url) "#test-" (s.latest.job.unwrap_or(0)) }
                    title { (s.latest.state) ": " (s.subject) }
                    updated { (rfc3339(*when)) }
                    link href=(url) {}
                    author { name { (s.author.as_deref().unwrap_or("unknown")) } }
                    summary { (s.latest.detail.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{}\n",
        feed.into_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_query_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_722_243_600), "2024-07-29T09:00:00Z");
        assert_eq!(url_escape("STILL REPRODUCES&x"), "STILL%20REPRODUCES%26x");
    }

    #[test]
    fn the_feed_escapes_what_mails_carry() {
        let row = SeriesRow {
            id: 7,
            list: "l".into(),
            lore: "http://lore".into(),
            msgid: "m@x".into(),
            subject: "a <b> & \"c\"".into(),
            version: 1,
            total: 1,
            author: Some("Dee <dee@example.org>".into()),
            first_seen: 0,
            latest: LatestTest {
                state: "FIXED".into(),
                job: Some(3),
                detail: None,
                base_runs: 0,
                patched_runs: 0,
            },
        };
        let feed = atom("http://q", &[(row, 0)]);
        assert!(
            feed.contains("<title>FIXED: a &lt;b&gt; &amp; &quot;c&quot;</title>"),
            "{feed}"
        );
        assert!(
            feed.contains("<name>Dee &lt;dee@example.org&gt;</name>"),
            "{feed}"
        );
        assert!(
            feed.contains("<link href=\"http://q/series/7\"></link>"),
            "{feed}"
        );
    }
}
