//! Following lore (public-inbox archives): on-demand HTTP fetches of one
//! message or thread; mirroring of a list's git epochs.

mod http;
pub mod mirror;
mod sync;

pub use http::{Client, FetchError};
pub use mirror::MirrorError;
pub use sync::{SyncError, SyncOptions, SyncReport, sync};

/// lorebot's User-Agent: lore asks bots to identify themselves and give a
/// contact.
pub fn user_agent(contact: &str) -> String {
    format!(
        "lorebot/{} (kernel patch test bot; contact: {contact})",
        env!("CARGO_PKG_VERSION")
    )
}

/// `<base>/<list>/<msgid>/`, with the Message-ID escaped as public-inbox
/// expects (`/` and other reserved bytes percent-encoded).
pub fn message_url(base: &str, list: &str, msgid: &str) -> String {
    let mut id = String::new();
    for b in msgid.trim_matches(|c| c == '<' || c == '>').bytes() {
        if b.is_ascii_alphanumeric() || b"@.-_+=~!$&'()*,;:".contains(&b) {
            id.push(b as char);
        } else {
            id.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{}/{}/{}/", base.trim_end_matches('/'), list, id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_urls_escape_slashes() {
        assert_eq!(
            super::message_url("https://lore.kernel.org/", "lkml", "<a/b@x>"),
            "https://lore.kernel.org/lkml/a%2Fb@x/"
        );
    }
}
