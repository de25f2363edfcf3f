//! Unguessable links to the release and ticket pages, and the key that signs the local
//! chat's sessions: an HMAC key from `RELEASEBOT_LINK_SECRET`, or generated once and kept
//! in the database (so that links stay valid across restarts and replicas).

use super::{Outbound, Texts};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A page a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Page {
    Ticket(i64),
    Execution(i64),
}

impl Page {
    fn path(self) -> (&'static str, i64) {
        match self {
            Page::Ticket(id) => ("tickets", id),
            Page::Execution(id) => ("executions", id),
        }
    }
}

#[derive(Clone)]
pub struct Links {
    base: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The name of the link key kept in the database when none is configured.
pub const KEY_NAME: &str = "link_key";

impl Links {
    pub fn new(public_url: &str, key: &[u8]) -> Self {
        Self {
            base: public_url.trim_end_matches('/').to_string(),
            key: key.to_vec(),
        }
    }

    /// An HMAC of `what`, hex (128 bits: unguessable, short enough for a URL).
    pub fn sign(&self, what: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => return String::new(),
        };
        mac.update(what.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `token` is `what`'s signature (in constant time).
    pub fn verify(&self, what: &str, token: &str) -> bool {
        let expected = self.sign(what);
        !expected.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token.as_bytes()))
    }

    pub fn token(&self, page: Page) -> String {
        let (kind, id) = page.path();
        self.sign(&format!("page:{kind}:{id}"))
    }

    pub fn check(&self, page: Page, token: &str) -> bool {
        let (kind, id) = page.path();
        self.verify(&format!("page:{kind}:{id}"), token)
    }

    /// The page's path with its token (`/executions/7?t=…`).
    pub fn path(&self, page: Page) -> String {
        let (kind, id) = page.path();
        format!("/{kind}/{id}?t={}", self.token(page))
    }

    /// The page's full URL.
    pub fn url(&self, page: Page) -> String {
        format!("{}{}", self.base, self.path(page))
    }

    pub fn base(&self) -> &str {
        &self.base
    }
}

/// A message about a ticket or a release links to its page (each renderer places the link
/// where its platform shows it: the context line, the embed's description).
pub fn with_page_link(mut out: Outbound, links: Option<&Links>, texts: &Texts) -> Outbound {
    let (Some(links), Some(message)) = (links, out.message_mut()) else {
        return out;
    };
    let Some(page) = message.page else {
        return out;
    };
    let key = match page {
        crate::chat::links::Page::Ticket(_) => "page_link_ticket",
        crate::chat::links::Page::Execution(_) => "page_link_execution",
    };
    message.link = Some(crate::chat::Link {
        url: links.url(page),
        label: texts.plain(key).unwrap_or_else(|_| key.to_string()),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_own_page_only() {
        let l = Links::new("http://x/", b"k");
        let t = l.token(Page::Execution(7));
        assert!(l.check(Page::Execution(7), &t));
        assert!(!l.check(Page::Execution(8), &t));
        assert!(!l.check(Page::Ticket(7), &t));
        assert!(!l.check(Page::Execution(7), ""));
        assert!(!Links::new("http://x", b"other").check(Page::Execution(7), &t));
        assert_eq!(
            l.url(Page::Ticket(3)),
            format!("http://x/tickets/3?t={}", l.token(Page::Ticket(3)))
        );
    }
}
