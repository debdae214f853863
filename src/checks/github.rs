//! GitHub: the open pull requests of a repository, and a check run per
//! tested head commit (`in_progress` when its test starts, the conclusion
//! with the report and annotations when it ends), through octocrab.
//!
//! Authentication is a token, or a GitHub App: a JWT signed with the
//! app's private key buys an installation token for the repository,
//! renewed by octocrab before it expires.

use std::collections::HashMap;
use std::sync::Mutex;

use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use super::{Annotation, CheckReport};

/// GitHub takes at most 50 annotations per request; the rest go in
/// further updates of the same check run.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;

#[derive(Debug, Error)]
pub enum GitHubError {
    #[error("GitHub repository {0:?}: expected owner/name")]
    Repo(String),
    #[error("GitHub App private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("GitHub {what}: {message}")]
    Api { what: String, message: String },
}

/// How lorebot signs in.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A personal or installation token (for testing, or a single tree).
    Token(String),
    /// A GitHub App: its id and its private key (PEM), with where the key
    /// came from for messages.
    App {
        id: u64,
        key_pem: Vec<u8>,
        key_path: String,
    },
}

/// An open pull request, as lorebot tests it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub author: Option<String>,
    /// The page on GitHub.
    pub url: String,
    pub head_sha: String,
    pub base_sha: String,
    /// The branch it targets.
    pub base_ref: String,
    /// Where `refs/pull/N/head` can be fetched: the base repository.
    pub clone_url: String,
}

/// A GitHub API endpoint (`https://api.github.com`, or GitHub Enterprise's
/// `/api/v3`) with lorebot's credentials.
pub struct GitHub {
    runtime: tokio::runtime::Runtime,
    api: String,
    auth: Auth,
    /// One client per repository: an app has an installation each.
    clients: Mutex<HashMap<String, Octocrab>>,
}

impl GitHub {
    pub fn new(api: &str, auth: Auth) -> Result<GitHub, GitHubError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| GitHubError::Api {
                what: "client".to_owned(),
                message: e.to_string(),
            })?;
        Ok(GitHub {
            runtime,
            api: api.trim_end_matches('/').to_owned(),
            auth,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The open pull requests of `repo` (`owner/name`), every page. One
    /// that lacks what a test needs is logged and left out.
    pub fn open_pulls(&self, repo: &str) -> Result<Vec<Pull>, GitHubError> {
        let (owner, name) = split_repo(repo)?;
        let client = self.client(repo)?;
        let what = || format!("listing the pull requests of {repo}");
        let pulls: Vec<Value> = self
            .runtime
            .block_on(async {
                let first: octocrab::Page<Value> = client
                    .get(
                        format!("/repos/{owner}/{name}/pulls"),
                        Some(&[("state", "open"), ("per_page", "100")]),
                    )
                    .await?;
                client.all_pages(first).await
            })
            .map_err(|e| api_err(what(), e))?;
        Ok(pulls
            .iter()
            .filter_map(|p| {
                let found = pull(p);
                if found.is_none() {
                    tracing::warn!(repo, number = %p["number"], "pull request without head, base or clone URL: left out");
                }
                found
            })
            .collect())
    }

    /// The check run `name` of `job` on `head_sha`, marked in progress:
    /// the one an earlier attempt made (found by its external id, so a
    /// restarted job never makes a second), else a new one. Its id.
    pub fn start(
        &self,
        repo: &str,
        head_sha: &str,
        name: &str,
        external_id: &str,
        details_url: Option<&str>,
    ) -> Result<u64, GitHubError> {
        let (owner, repo_name) = split_repo(repo)?;
        let client = self.client(repo)?;
        let what = format!("check run {name:?} on {repo}@{head_sha}");
        self.runtime
            .block_on(async {
                let runs: Value = client
                    .get(
                        format!("/repos/{owner}/{repo_name}/commits/{head_sha}/check-runs"),
                        Some(&[("check_name", name), ("filter", "all")]),
                    )
                    .await?;
                let found = runs["check_runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["external_id"].as_str() == Some(external_id))
                    .and_then(|r| r["id"].as_u64());
                if let Some(id) = found {
                    return Ok(Some(id));
                }
                let created: Value = client
                    .post(
                        format!("/repos/{owner}/{repo_name}/check-runs"),
                        Some(&NewCheckRun {
                            name,
                            head_sha,
                            status: "in_progress",
                            external_id,
                            details_url,
                            started_at: now_rfc3339(),
                        }),
                    )
                    .await?;
                Ok(created["id"].as_u64())
            })
            .map_err(|e| api_err(what.clone(), e))?
            .ok_or_else(|| GitHubError::Api {
                what,
                message: "the answer has no check run id".to_owned(),
            })
    }

    /// Completes check run `id` with `report`: the conclusion, summary
    /// and the first 50 annotations, then the rest 50 at a time.
    pub fn complete(&self, repo: &str, id: u64, report: &CheckReport) -> Result<(), GitHubError> {
        let (owner, name) = split_repo(repo)?;
        let client = self.client(repo)?;
        let route = format!("/repos/{owner}/{name}/check-runs/{id}");
        let mut batches = report.annotations.chunks(ANNOTATIONS_PER_REQUEST);
        let output = |annotations: &'_ [Annotation]| Output {
            title: &report.title,
            summary: &report.summary,
            annotations: annotations.to_vec(),
        };
        let first = Completion {
            status: Some("completed"),
            conclusion: Some(report.conclusion),
            completed_at: Some(now_rfc3339()),
            output: output(batches.next().unwrap_or_default()),
        };
        self.runtime
            .block_on(async {
                let _: Value = client.patch(&route, Some(&first)).await?;
                for batch in batches {
                    let more = Completion {
                        status: None,
                        conclusion: None,
                        completed_at: None,
                        output: output(batch),
                    };
                    let _: Value = client.patch(&route, Some(&more)).await?;
                }
                Ok(())
            })
            .map_err(|e| api_err(format!("completing check run {id} on {repo}"), e))
    }

    /// The client for `repo`: the token's, or the app's installation on
    /// the repository (looked up once).
    fn client(&self, repo: &str) -> Result<Octocrab, GitHubError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = match self.auth {
            Auth::Token(_) => "",
            Auth::App { .. } => repo,
        };
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let what = || format!("signing in at {}", self.api);
        let builder = Octocrab::builder()
            .base_uri(self.api.as_str())
            .map_err(|e| api_err(what(), e))?;
        let client = match &self.auth {
            Auth::Token(token) => {
                let _guard = self.runtime.enter();
                builder
                    .personal_token(token.clone())
                    .build()
                    .map_err(|e| api_err(what(), e))?
            }
            Auth::App {
                id,
                key_pem,
                key_path,
            } => {
                let key =
                    octocrab::EncodingKey::from_rsa_pem(key_pem).map_err(|e| GitHubError::Key {
                        path: key_path.clone(),
                        message: e.to_string(),
                    })?;
                let (owner, name) = split_repo(repo)?;
                let _guard = self.runtime.enter();
                let app = builder
                    .app(AppId(*id), key)
                    .build()
                    .map_err(|e| api_err(what(), e))?;
                let what = || format!("the app's installation on {repo}");
                let installation: Value = self
                    .runtime
                    .block_on(app.get(format!("/repos/{owner}/{name}/installation"), None::<&()>))
                    .map_err(|e| api_err(what(), e))?;
                let id = installation["id"]
                    .as_u64()
                    .ok_or_else(|| GitHubError::Api {
                        what: what(),
                        message: format!("no installation id in {installation}"),
                    })?;
                app.installation(InstallationId(id))
                    .map_err(|e| api_err(what(), e))?
            }
        };
        clients.insert(key.to_owned(), client.clone());
        Ok(client)
    }
}

#[derive(Serialize)]
struct NewCheckRun<'a> {
    name: &'a str,
    head_sha: &'a str,
    status: &'a str,
    external_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details_url: Option<&'a str>,
    started_at: String,
}

#[derive(Serialize)]
struct Completion<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conclusion: Option<super::Conclusion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    output: Output<'a>,
}

#[derive(Serialize)]
struct Output<'a> {
    title: &'a str,
    summary: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<Annotation>,
}

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("missing or wrong X-Hub-Signature-256")]
    Signature,
    #[error("not a pull_request event lorebot understands: {0}")]
    Malformed(String),
}

/// A webhook delivery: the pull request whose head is new (opened,
/// pushed to, reopened) and its repository (`owner/name`). `signature` is
/// the `X-Hub-Signature-256` header, checked against `secret` before
/// anything is read; other events and actions give `None`.
pub fn webhook_pull(
    secret: &[u8],
    signature: Option<&str>,
    event: Option<&str>,
    body: &[u8],
) -> Result<Option<(String, Pull)>, WebhookError> {
    use hmac::Mac;
    let expected = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(hex_bytes)
        .ok_or(WebhookError::Signature)?;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|_| WebhookError::Signature)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::Signature)?;
    if event != Some("pull_request") {
        return Ok(None);
    }
    let delivery: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    if !matches!(
        delivery["action"].as_str(),
        Some("opened" | "synchronize" | "reopened")
    ) {
        return Ok(None);
    }
    let repo = delivery["repository"]["full_name"]
        .as_str()
        .ok_or_else(|| WebhookError::Malformed("no repository.full_name".to_owned()))?;
    let pull = pull(&delivery["pull_request"]).ok_or_else(|| {
        WebhookError::Malformed("a pull_request without number, head or base".to_owned())
    })?;
    Ok(Some((repo.to_owned(), pull)))
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn pull(p: &Value) -> Option<Pull> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Some(Pull {
        number: p["number"].as_u64()?,
        title: text(&p["title"]).unwrap_or_default(),
        author: text(&p["user"]["login"]),
        url: text(&p["html_url"]).unwrap_or_default(),
        head_sha: text(&p["head"]["sha"])?,
        base_sha: text(&p["base"]["sha"])?,
        base_ref: text(&p["base"]["ref"])?,
        clone_url: text(&p["base"]["repo"]["clone_url"])?,
    })
}

/// `owner/name` as its two parts.
pub fn split_repo(repo: &str) -> Result<(&str, &str), GitHubError> {
    match repo.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((owner, name))
        }
        _ => Err(GitHubError::Repo(repo.to_owned())),
    }
}

/// What GitHub answered, or why there was no answer, in one line.
fn api_err(what: String, e: octocrab::Error) -> GitHubError {
    let message = match &e {
        octocrab::Error::GitHub { source, .. } => {
            format!("{} {}", source.status_code, source.message)
        }
        other => {
            let text = other.to_string();
            // Some variants append a backtrace.
            text.split("\n\nFound at")
                .next()
                .unwrap_or(&text)
                .to_owned()
        }
    };
    GitHubError::Api { what, message }
}

/// Now, as GitHub's timestamps are written (`2026-12-06T03:07:06Z`).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    crate::mail::rfc3339(secs)
}
