//! Delivering replies: through a real SMTP server on loopback (Debian's
//! aiosmtpd, writing what it receives to a maildir), and to a maildir
//! outbox, where a retry replaces the mail instead of adding a second.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lorebot::mail::{Address, Mail};
use lorebot::reply::deliver::{self, Security, Transport};

struct SmtpServer {
    server: support::Server,
    maildir: PathBuf,
}

fn start_smtp(name: &str) -> SmtpServer {
    let dir = support::tempdir(name);
    let maildir = dir.join("received");
    let port = support::free_port();
    // aiosmtpd missing: run scripts/install-test-deps.
    let server = support::Server::start(
        Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        port,
    );
    SmtpServer { server, maildir }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn addr(email: &str) -> Address {
    Address {
        name: None,
        email: email.to_owned(),
    }
}

const MAIL: &str = "From: lorebot <bot@example.org>\r\n\
To: Ada Author <ada@example.org>\r\n\
Cc: linux-mm@kvack.org\r\n\
Subject: Re: [PATCH] mm/filemap: don't busy-loop\r\n\
Message-ID: <lorebot-1@example.org>\r\n\
In-Reply-To: <patch-1@example.org>\r\n\
References: <report-1@example.org>\r\n <patch-1@example.org>\r\n\
\r\n\
Verdict: FIXED\r\n\
\r\n\
Tested-by: lorebot <bot@example.org>\r\n";

#[test]
fn smtp_delivers_to_every_recipient() {
    let server = start_smtp("smtp");
    let transport = Transport::Smtp {
        host: "127.0.0.1".to_owned(),
        port: server.server.port,
        security: Security::None,
        login: None,
    };
    deliver::send(
        &transport,
        "lorebot-1@example.org",
        &addr("bot@example.org"),
        &[addr("ada@example.org"), addr("linux-mm@kvack.org")],
        MAIL.as_bytes(),
    )
    .unwrap();
    let received = files(&server.maildir.join("new"));
    assert_eq!(received.len(), 1, "{received:?}");
    let raw = std::fs::read(&received[0]).unwrap();
    let mail = Mail::parse(&raw, 1 << 20).unwrap();
    assert_eq!(mail.message_id, "lorebot-1@example.org");
    assert_eq!(mail.in_reply_to.as_deref(), Some("patch-1@example.org"));
    assert_eq!(
        mail.references,
        ["report-1@example.org", "patch-1@example.org"]
    );
    assert!(String::from_utf8_lossy(&mail.body).contains("Tested-by: lorebot <bot@example.org>"));
    // aiosmtpd records the envelope recipients it was given.
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("X-RcptTo: ada@example.org, linux-mm@kvack.org"),
        "{text}"
    );
}

#[test]
fn smtp_refusal_is_an_error_naming_the_server() {
    // Nothing listens on this port.
    let port = support::free_port();
    let transport = Transport::Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        security: Security::None,
        login: None,
    };
    let err = deliver::send(
        &transport,
        "x@y",
        &addr("bot@example.org"),
        &[addr("a@b.org")],
        MAIL.as_bytes(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("SMTP 127.0.0.1:{port}: ")),
        "{err}"
    );
}

#[test]
fn maildir_retry_does_not_duplicate() {
    let dir = support::tempdir("outbox").join("outbox");
    let transport = Transport::Maildir(dir.clone());
    for _ in 0..2 {
        deliver::send(
            &transport,
            "lorebot-1@example.org",
            &addr("bot@example.org"),
            &[],
            MAIL.as_bytes(),
        )
        .unwrap();
    }
    let sent = files(&dir.join("new"));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(std::fs::read(&sent[0]).unwrap(), MAIL.as_bytes());
    assert!(files(&dir.join("tmp")).is_empty());
}
