//! Unguessable links to the release and ticket pages, and the key that signs the local
//! chat's sessions: an HMAC key from `RELEASEBOT_LINK_SECRET`, or generated once and kept
//! in the database (so that links stay valid across restarts and replicas).

use crate::store::Store;
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

const KEY_NAME: &str = "link_key";

impl Links {
    pub fn new(public_url: &str, key: &[u8]) -> Self {
        Self {
            base: public_url.trim_end_matches('/').to_string(),
            key: key.to_vec(),
        }
    }

    /// The key from `secret` when given, else the database's (generated on first use).
    pub async fn load(store: &Store, public_url: &str, secret: Option<&str>, now: i64) -> anyhow::Result<Self> {
        if let Some(s) = secret.filter(|s| !s.trim().is_empty()) {
            return Ok(Self::new(public_url, s.as_bytes()));
        }
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        let key = crate::store::secrets::get_or_create(store, KEY_NAME, &fresh, now).await?;
        Ok(Self::new(public_url, key.as_bytes()))
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
