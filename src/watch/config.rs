//! The watch configuration: which lists to follow on which lore, the jobs
//! that test what is posted there, who the bot is and how it mails.
//!
//! ```yaml
//! lore: https://lore.kernel.org
//! lists:
//!   linux-mm: linux-mm@kvack.org      # name on lore: posting address
//! jobs: [jobs/filemap-stall.yaml]     # each tests the lists it names
//! from: lorebot <lorebot@example.org>
//! data_dir: /srv/lorebot                # default: $XDG_DATA_HOME/lorebot
//! work_dir: /srv/lorebot-work           # trees, builds, kernels (default: data_dir)
//! deliver:
//!   maildir: outbox                   # the default: <data_dir>/outbox
//!   # smtp: {host: smtp.example.org, port: 587, security: starttls,
//!   #        user: lorebot, password_file: ~/.lorebot-smtp}
//! concurrency: 1                      # jobs at once
//! poll: 5m
//! backlog: 7d                         # or `all`: how far back a new list is read
//! web_url: https://lorebot.example.org # `lorebot serve`: replies link there
//! github:                             # for jobs that name a repository
//!   token_file: /etc/lorebot/github-token  # or app_id + private_key_file
//! patchwork:                          # for jobs that name an instance
//!   token_file: /etc/lorebot/patchwork-token
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::checks::github::Auth;
use crate::job::{self, FileError, JobPlan, is_http_url, line_of, parse_duration, path_in};
use crate::mail::Address;
use crate::reply::Identity;
use crate::reply::deliver::{Security, Transport};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    lore: String,
    lists: BTreeMap<String, String>,
    jobs: Vec<String>,
    from: String,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    work_dir: Option<String>,
    #[serde(default)]
    deliver: Option<DeliverSpec>,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    poll: Option<String>,
    #[serde(default)]
    backlog: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    github: Option<GitHubSpec>,
    #[serde(default)]
    patchwork: Option<PatchworkSpec>,
}

/// How to reach GitHub: a token, or an app (id and private key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitHubSpec {
    #[serde(default)]
    api: Option<String>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    app_id: Option<u64>,
    #[serde(default)]
    private_key_file: Option<String>,
    /// The secret `pull_request` webhook deliveries are signed with;
    /// `lorebot serve` takes them when set.
    #[serde(default)]
    webhook_secret_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchworkSpec {
    /// A file holding the API token checks are posted with.
    token_file: String,
}

/// One of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverSpec {
    #[serde(default)]
    maildir: Option<String>,
    #[serde(default)]
    smtp: Option<SmtpSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpSpec {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    /// `starttls` (the default), `tls` or `none`.
    #[serde(default)]
    security: Option<String>,
    #[serde(default)]
    user: Option<String>,
    /// A file holding the password, so the config can be shared.
    #[serde(default)]
    password_file: Option<String>,
}

/// A followed list.
#[derive(Clone, Debug)]
pub struct List {
    pub name: String,
    /// Where the list is mailed: Cc'd on replies.
    pub address: Address,
}

/// The GitHub API and lorebot's credentials there.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    pub api: String,
    pub auth: Auth,
    /// The secret webhook deliveries are signed with.
    pub webhook_secret: Option<Vec<u8>>,
}

/// How far back the first look at a list goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backlog {
    All,
    Last(Duration),
}

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub lore: String,
    pub lists: Vec<List>,
    pub jobs: Vec<JobPlan>,
    pub bot: Identity,
    /// The bot's state: database, list mirrors, console logs, outbox.
    pub data_dir: PathBuf,
    /// Tree clones, worktrees, builds and the kernel cache: large, and
    /// shareable by several bots (default: `data_dir`).
    pub work_dir: PathBuf,
    pub transport: Transport,
    pub concurrency: u32,
    pub poll: Duration,
    pub backlog: Backlog,
    /// Where `lorebot serve` is reached: replies link to the series' page.
    pub web_url: Option<String>,
    /// For jobs that name a GitHub repository.
    pub github: Option<GitHubConfig>,
    /// The API token checks are posted to patchwork with.
    pub patchwork_token: Option<String>,
}

impl Config {
    /// Where `list` is mailed, when the config names it.
    pub fn list_address(&self, list: &str) -> Option<&Address> {
        self.lists
            .iter()
            .find(|l| l.name == list)
            .map(|l| &l.address)
    }

    /// The jobs that follow `list`.
    pub fn jobs_on<'a>(&'a self, list: &'a str) -> impl Iterator<Item = &'a JobPlan> {
        self.jobs
            .iter()
            .filter(move |j| j.lists.iter().any(|l| l == list))
    }
}

/// Reads and checks the config at `path`; `default_data_dir` serves when
/// it names none.
pub fn load(path: &Path, default_data_dir: &Path) -> Result<Config, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let err = |field: &str, message: String| FileError::Invalid {
        path: path.to_owned(),
        line: line_of(&text, field),
        message: format!("{field}: {message}"),
    };
    // A file the config names for a password, token or key, so that the
    // config itself can be shared.
    let secret = |field: &str, file: &str| {
        let file = path_in(path, file);
        std::fs::read_to_string(&file).map_err(|e| err(field, format!("{}: {e}", file.display())))
    };
    let spec: ConfigSpec = serde_norway::from_str(&text).map_err(|e| FileError::Invalid {
        path: path.to_owned(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    let lore = spec.lore.trim_end_matches('/').to_owned();
    if !(is_http_url(&lore) || lore.starts_with("file://")) {
        return Err(err(
            "lore",
            format!("{lore:?} is not an http(s) or file URL"),
        ));
    }
    let mut lists = Vec::new();
    for (name, address) in &spec.lists {
        let address = address.trim();
        if !address.contains('@') {
            return Err(err(
                "lists",
                format!("{name}: {address:?} is not an address"),
            ));
        }
        lists.push(List {
            name: name.clone(),
            address: Address {
                name: None,
                email: address.to_owned(),
            },
        });
    }
    let mut jobs: Vec<JobPlan> = Vec::new();
    for j in &spec.jobs {
        let plan = job::load(&path_in(path, j))?;
        if jobs.iter().any(|other| other.name == plan.name) {
            return Err(err("jobs", format!("two jobs are named {:?}", plan.name)));
        }
        if let Some(unknown) = plan.lists.iter().find(|l| !spec.lists.contains_key(*l)) {
            return Err(err(
                "jobs",
                format!(
                    "job {} follows list {unknown:?}, which `lists` does not name",
                    plan.name
                ),
            ));
        }
        jobs.push(plan);
    }
    let bot = Identity::parse(&spec.from).map_err(|e| err("from", e))?;
    let data_dir = spec
        .data_dir
        .map_or_else(|| default_data_dir.to_owned(), |d| path_in(path, &d));
    let deliver = spec.deliver.map(|d| (d.maildir, d.smtp));
    let work_dir = spec
        .work_dir
        .map_or_else(|| data_dir.clone(), |d| path_in(path, &d));
    let transport = match deliver {
        None | Some((None, None)) => Transport::Maildir(data_dir.join("outbox")),
        Some((Some(_), Some(_))) => {
            return Err(err(
                "deliver",
                "either maildir or smtp, not both".to_owned(),
            ));
        }
        Some((Some(dir), None)) => Transport::Maildir(path_in(path, &dir)),
        Some((None, Some(smtp))) => {
            let security = match smtp.security.as_deref().unwrap_or("starttls") {
                "starttls" => Security::StartTls,
                "tls" => Security::Tls,
                "none" => Security::None,
                other => {
                    return Err(err(
                        "deliver.smtp.security",
                        format!("{other:?}: expected starttls, tls or none"),
                    ));
                }
            };
            let login = match (smtp.user, smtp.password_file) {
                (None, None) => None,
                (Some(user), Some(file)) => {
                    let password = secret("deliver.smtp.password_file", &file)?;
                    Some((user, password.trim_end_matches(['\r', '\n']).to_owned()))
                }
                _ => {
                    return Err(err(
                        "deliver.smtp",
                        "user and password_file go together".to_owned(),
                    ));
                }
            };
            let port = smtp.port.unwrap_or(match security {
                Security::Tls => 465,
                Security::StartTls => 587,
                Security::None => 25,
            });
            Transport::Smtp {
                host: smtp.host,
                port,
                security,
                login,
            }
        }
    };
    let concurrency = spec.concurrency.unwrap_or(1);
    if !(1..=64).contains(&concurrency) {
        return Err(err(
            "concurrency",
            format!("{concurrency}: expected 1 to 64"),
        ));
    }
    let duration = |field: &str, value: Option<&str>, default: u64| match value {
        None => Ok(Duration::from_secs(default)),
        Some(v) => parse_duration(v)
            .or_else(|| v.strip_suffix('d')?.parse::<u64>().ok().map(days))
            .ok_or_else(|| err(field, format!("{v:?} is not a duration (30s, 5m, 7d)"))),
    };
    let poll = duration("poll", spec.poll.as_deref(), 300)?;
    let backlog = match spec.backlog.as_deref() {
        Some("all") => Backlog::All,
        other => Backlog::Last(duration("backlog", other, 7 * 86_400)?),
    };
    let web_url = match spec.web_url {
        None => None,
        Some(u) if is_http_url(&u) => Some(u.trim_end_matches('/').to_owned()),
        Some(u) => return Err(err("web_url", format!("{u:?} is not an http(s) URL"))),
    };
    let github = match spec.github {
        None => None,
        Some(g) => {
            let api = g.api.unwrap_or_else(|| "https://api.github.com".to_owned());
            if !is_http_url(&api) {
                return Err(err("github.api", format!("{api:?} is not an http(s) URL")));
            }
            let auth = match (g.token_file, g.app_id, g.private_key_file) {
                (Some(file), None, None) => {
                    Auth::Token(secret("github.token_file", &file)?.trim().to_owned())
                }
                (None, Some(id), Some(file)) => Auth::App {
                    id,
                    key_pem: secret("github.private_key_file", &file)?.into_bytes(),
                    key_path: path_in(path, &file).display().to_string(),
                },
                _ => {
                    return Err(err(
                        "github",
                        "either token_file, or app_id with private_key_file".to_owned(),
                    ));
                }
            };
            let webhook_secret = match g.webhook_secret_file {
                Some(file) => Some(
                    secret("github.webhook_secret_file", &file)?
                        .trim_end()
                        .as_bytes()
                        .to_vec(),
                ),
                None => None,
            };
            Some(GitHubConfig {
                api: api.trim_end_matches('/').to_owned(),
                auth,
                webhook_secret,
            })
        }
    };
    let patchwork_token = match spec.patchwork {
        None => None,
        Some(p) => Some(
            secret("patchwork.token_file", &p.token_file)?
                .trim()
                .to_owned(),
        ),
    };
    for job in &jobs {
        if job.github.is_some() && github.is_none() {
            return Err(err(
                "github",
                format!(
                    "job {} names a GitHub repository: say how to sign in",
                    job.name
                ),
            ));
        }
        if job.patchwork.is_some() && patchwork_token.is_none() {
            return Err(err(
                "patchwork",
                format!(
                    "job {} names a patchwork instance: give its token_file",
                    job.name
                ),
            ));
        }
    }
    Ok(Config {
        path: path.to_owned(),
        lore,
        lists,
        jobs,
        bot,
        data_dir,
        work_dir,
        transport,
        concurrency,
        poll,
        backlog,
        web_url,
        github,
        patchwork_token,
    })
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lorebot-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("watch.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const JOB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/filemap-stall.yaml");

    #[test]
    fn a_config_names_lists_jobs_and_the_bot() {
        let path = write(
            "ok",
            &format!(
                "lore: http://127.0.0.1:8080/\nlists:\n  demo: demo@example.org\njobs: [{JOB}]\n\
                 from: lorebot <bot@example.org>\nbacklog: all\npoll: 30s\n"
            ),
        );
        let c = load(&path, Path::new("/data")).unwrap();
        assert_eq!(c.lore, "http://127.0.0.1:8080");
        assert_eq!(c.jobs_on("demo").count(), 1);
        assert_eq!(c.jobs_on("other").count(), 0);
        assert_eq!(c.backlog, Backlog::All);
        assert_eq!(c.poll, Duration::from_secs(30));
        assert!(matches!(&c.transport, Transport::Maildir(d) if d == Path::new("/data/outbox")));
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let cases = [
            (
                format!("lore: http://x\nlists: {{}}\njobs: [{JOB}]\nfrom: b <b@x>\n"),
                "jobs: job filemap-stall follows list \"demo\", which `lists` does not name",
                3,
            ),
            (
                "lore: http://x\nlists: {}\njobs: []\nfrom: nobody\n".to_owned(),
                "from:",
                4,
            ),
            (
                "lore: http://x\nlists: {}\njobs: []\nfrom: b <b@x>\nbacklog: soon\n".to_owned(),
                "backlog: \"soon\" is not a duration",
                5,
            ),
            (
                "lore: http://x\nlists: {}\njobs: []\nfrom: b <b@x>\nsmtp: x\n".to_owned(),
                "unknown field `smtp`",
                5,
            ),
            (
                "lore: http://x\nlists: {}\njobs: []\nfrom: b <b@x>\ngithub:\n  app_id: 7\n"
                    .to_owned(),
                "github: either token_file, or app_id with private_key_file",
                5,
            ),
            (
                "lore: http://x\nlists: {}\njobs: []\nfrom: b <b@x>\ngithub:\n  token_file: /no/such/token\n"
                    .to_owned(),
                "github.token_file: /no/such/token:",
                6,
            ),
        ];
        for (i, (text, message, line)) in cases.iter().enumerate() {
            let path = write(&format!("bad{i}"), text);
            let e = load(&path, Path::new("/data")).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{}:{line}:", path.display())) && e.contains(message),
                "{e}"
            );
        }
    }
}
