//! Patchwork: a check on each patch of a tested series
//! (`POST /api/patches/{id}/checks/`), the patches found by Message-ID.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::verdict::protocol::Verdict;

#[derive(Debug, Error)]
pub enum PatchworkError {
    #[error("patchwork {url}: {message}")]
    Http { url: String, message: String },
    #[error("patchwork {url}: no patch with Message-ID <{msgid}>")]
    NoPatch { url: String, msgid: String },
}

/// Patchwork's check states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Success,
    Warning,
    Fail,
}

impl State {
    /// FIXED is a success; STILL REPRODUCES and a patch that does not
    /// apply or build fail; anything that decides nothing is a warning.
    pub fn of(verdict: Verdict) -> State {
        match verdict {
            Verdict::Fixed => State::Success,
            Verdict::StillReproduces | Verdict::ApplyFailed | Verdict::BuildFailed => State::Fail,
            Verdict::Reduced | Verdict::Inconclusive | Verdict::Infra => State::Warning,
        }
    }
}

/// The check to post on every patch of a series, as recorded with the
/// verdict until it is sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesCheck {
    /// The patchwork instance (`https://patchwork.kernel.org`).
    pub url: String,
    /// Its project, narrowing the Message-ID lookup when set.
    pub project: Option<String>,
    /// The series' patches.
    pub msgids: Vec<String>,
    pub state: State,
    /// `lorebot-<job>`: one check per job on a patch.
    pub context: String,
    /// One line: the verdict and its numbers.
    pub description: String,
    pub target_url: Option<String>,
}

#[derive(Serialize)]
struct NewCheck<'a> {
    state: State,
    context: &'a str,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_url: Option<&'a str>,
}

#[derive(Deserialize)]
struct PatchRef {
    id: u64,
}

/// Posts `check` on each of its patches with the API token `token`.
/// A patch patchwork does not know is an error: the check is tried again.
pub fn post(check: &SeriesCheck, token: &str) -> Result<(), PatchworkError> {
    let base = check.url.trim_end_matches('/');
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("lorebot/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| http_err(base, e))?;
    let auth = format!("Token {token}");
    for msgid in &check.msgids {
        let mut query = vec![("msgid", msgid.as_str())];
        if let Some(project) = &check.project {
            query.push(("project", project));
        }
        let url = format!("{base}/api/patches/");
        let found: Vec<PatchRef> = client
            .get(&url)
            .query(&query)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .map_err(|e| http_err(&url, e))?;
        let patch = found.first().ok_or_else(|| PatchworkError::NoPatch {
            url: base.to_owned(),
            msgid: msgid.clone(),
        })?;
        let url = format!("{base}/api/patches/{}/checks/", patch.id);
        client
            .post(&url)
            .header("Authorization", &auth)
            .json(&NewCheck {
                state: check.state,
                context: &check.context,
                description: &check.description,
                target_url: check.target_url.as_deref(),
            })
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json::<Value>())
            .map_err(|e| http_err(&url, e))?;
    }
    Ok(())
}

fn http_err(url: &str, e: reqwest::Error) -> PatchworkError {
    PatchworkError::Http {
        url: url.to_owned(),
        message: match e.status() {
            Some(status) => format!("answered {status}"),
            None => e.to_string(),
        },
    }
}
