//! Delivery: a maildir outbox (the default, so nothing is mailed by
//! surprise) or SMTP.

use std::path::PathBuf;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{SmtpTransport, Transport as _};
use thiserror::Error;

use crate::mail::Address;

#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error("outbox {}: {source}", dir.display())]
    Maildir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("address {address:?}: {problem}")]
    Address { address: String, problem: String },
    #[error("SMTP {server}: {message}")]
    Smtp { server: String, message: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain text (a relay on loopback).
    None,
    /// STARTTLS on the submission port.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone, Debug)]
pub enum Transport {
    /// Mails are written to `<dir>/new/`, named after their Message-ID.
    Maildir(PathBuf),
    Smtp {
        host: String,
        port: u16,
        security: Security,
        /// User and password.
        login: Option<(String, String)>,
    },
}

impl Transport {
    pub fn describe(&self) -> String {
        match self {
            Transport::Maildir(dir) => format!("maildir {}", dir.display()),
            Transport::Smtp { host, port, .. } => format!("smtp {host}:{port}"),
        }
    }
}

/// Sends `mail` (as produced by `Reply::to_bytes`) from `from` to
/// `recipients`. Sending the same Message-ID to a maildir again replaces
/// the file: a retry never makes a second copy.
pub fn send(
    transport: &Transport,
    message_id: &str,
    from: &Address,
    recipients: &[Address],
    mail: &[u8],
) -> Result<(), DeliveryError> {
    match transport {
        Transport::Maildir(dir) => write_maildir(dir, message_id, mail),
        Transport::Smtp {
            host,
            port,
            security,
            login,
        } => {
            let server = format!("{host}:{port}");
            let smtp_err = |e: &dyn std::fmt::Display| DeliveryError::Smtp {
                server: server.clone(),
                message: e.to_string(),
            };
            let tls = || TlsParameters::new(host.clone()).map_err(|e| smtp_err(&e));
            let mut builder = SmtpTransport::builder_dangerous(host.as_str()).port(*port);
            builder = match security {
                Security::None => builder.tls(Tls::None),
                Security::StartTls => builder.tls(Tls::Required(tls()?)),
                Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
            };
            if let Some((user, password)) = login {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            let parse = |a: &Address| {
                a.email
                    .parse::<lettre::Address>()
                    .map_err(|e| DeliveryError::Address {
                        address: a.email.clone(),
                        problem: e.to_string(),
                    })
            };
            let to = recipients
                .iter()
                .map(parse)
                .collect::<Result<Vec<_>, _>>()?;
            let envelope = Envelope::new(Some(parse(from)?), to).map_err(|e| smtp_err(&e))?;
            builder
                .build()
                .send_raw(&envelope, mail)
                .map(|_| ())
                .map_err(|e| smtp_err(&e))
        }
    }
}

fn write_maildir(
    dir: &std::path::Path,
    message_id: &str,
    mail: &[u8],
) -> Result<(), DeliveryError> {
    let err = |source| DeliveryError::Maildir {
        dir: dir.to_owned(),
        source,
    };
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(err)?;
    }
    let name: String = message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tmp = dir.join("tmp").join(&name);
    std::fs::write(&tmp, mail).map_err(err)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, dir.join("new").join(&name)).map_err(err)
}
