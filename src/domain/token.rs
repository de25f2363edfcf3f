//! API tokens for pipelines (`POST /api/v1/releases`): what a token looks like, and how
//! it is checked. A token is `rbt_<id>_<secret>`; only the SHA-256 of its secret is
//! stored, and a presented secret is compared with it in constant time. The id finds the
//! row without comparing secrets; a token is shown once, when it is made.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with (secret scanners can look for it).
pub const PREFIX: &str = "rbt_";

/// A token's name: lowercase letters, digits, `-` and `_`, at most 64.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A new secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The token as given to its owner.
pub fn format(id: i64, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// The id and the secret of a presented token, if it has a token's shape.
pub fn parse(token: &str) -> Option<(i64, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let id = id.parse().ok().filter(|i| *i > 0)?;
    (secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then_some((id, secret))
}

/// Whether `secret` is the one whose hash is `stored`, compared in constant time.
pub fn matches(stored: &str, secret: &str) -> bool {
    bool::from(stored.as_bytes().ct_eq(hash(secret).as_bytes()))
}

/// Whether a token scoped to `applications` may act on `application`.
pub fn covers(applications: &[String], application: &str) -> bool {
    applications.iter().any(|a| a == application || a == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_checked_by_its_id_and_the_hash_of_its_secret() {
        let secret = new_secret();
        let token = format(7, &secret);
        let (id, presented) = parse(&token).expect("a token's shape");
        assert_eq!(id, 7);
        assert!(matches(&hash(&secret), presented));
        assert!(!matches(&hash(&new_secret()), presented), "another secret");
        for bad in [
            "",
            "rbt_7",
            "rbt_x_ab",
            "rbt_0_",
            "Bearer rbt_7_00",
            &format!("rbt_7_{}", "g".repeat(64)),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_and_scopes() {
        assert!(valid_name("gitlab-payments"));
        assert!(!valid_name("GitLab") && !valid_name("") && !valid_name(&"a".repeat(65)));
        let scope = vec!["payments".to_string(), "orders".to_string()];
        assert!(covers(&scope, "orders") && !covers(&scope, "billing"));
        assert!(covers(&["*".to_string()], "billing"));
    }
}
