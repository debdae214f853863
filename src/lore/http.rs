//! HTTP to lore: polite (User-Agent, backoff on 5xx and timeouts, never a
//! retry on 4xx).

use std::thread::sleep;
use std::time::Duration;

use thiserror::Error;

use crate::mail::{read_mbox, read_mbox_gz};

/// Threads larger than this (uncompressed) are refused.
const MAX_THREAD_BYTES: u64 = 256 << 20;

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: {source}")]
    Body {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Client {
    http: reqwest::blocking::Client,
    /// Attempts for a 5xx or a timeout, with doubling delays from `backoff`.
    attempts: u32,
    backoff: Duration,
}

impl Client {
    /// `contact`: who runs this bot (an address), for lore's admins.
    pub fn new(contact: &str) -> Client {
        Client::with_retries(contact, 4, Duration::from_secs(2))
    }

    pub fn with_retries(contact: &str, attempts: u32, backoff: Duration) -> Client {
        let http = reqwest::blocking::Client::builder()
            .user_agent(super::user_agent(contact))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("static client configuration");
        Client {
            http,
            attempts: attempts.max(1),
            backoff,
        }
    }

    /// GET with retries on 5xx and transport errors.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            let result = self.http.get(url).send();
            let retry = match result {
                Ok(resp) if resp.status().is_success() => {
                    return resp.bytes().map(|b| b.to_vec()).map_err(|source| {
                        FetchError::Transport {
                            url: url.to_owned(),
                            source,
                        }
                    });
                }
                Ok(resp) if resp.status().is_server_error() => FetchError::Status {
                    url: url.to_owned(),
                    status: resp.status().as_u16(),
                },
                Ok(resp) => {
                    return Err(FetchError::Status {
                        url: url.to_owned(),
                        status: resp.status().as_u16(),
                    });
                }
                Err(source) => FetchError::Transport {
                    url: url.to_owned(),
                    source,
                },
            };
            if attempt >= self.attempts {
                return Err(retry);
            }
            tracing::warn!(%url, attempt, error = %retry, "retrying after {delay:?}");
            sleep(delay);
            delay *= 2;
            attempt += 1;
        }
    }

    /// One message, as archived (`<msgid>/raw`, served as mboxrd).
    pub fn message(&self, base: &str, list: &str, msgid: &str) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}raw", super::message_url(base, list, msgid));
        let data = self.get(&url)?;
        read_mbox(&data)
            .into_iter()
            .next()
            .ok_or_else(|| FetchError::Body {
                url,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "empty response"),
            })
    }

    /// The whole thread around a message (`<msgid>/t.mbox.gz`), as raw mails.
    pub fn thread(&self, base: &str, list: &str, msgid: &str) -> Result<Vec<Vec<u8>>, FetchError> {
        let url = format!("{}t.mbox.gz", super::message_url(base, list, msgid));
        let gz = self.get(&url)?;
        read_mbox_gz(&gz, MAX_THREAD_BYTES).map_err(|source| FetchError::Body { url, source })
    }
}
