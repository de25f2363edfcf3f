//! The local chat: a fourth platform, in the browser, served by releasebot itself. The
//! outbox delivers to it like to any platform (its "API" is two tables); people act
//! through `server::local`'s routes, which record the same inbound events as Slack's.
//! It needs no workspace, no public URL and no app registration: the README's first
//! command and `releasebot demo` use it.

pub mod render;

pub const PLATFORM: &str = "local";

/// The channel people start in.
pub const DEFAULT_CHANNEL: &str = "releases";

/// The seeded people of the local chat: user id and the role each holds.
pub const USERS: &[(&str, &str)] = &[
    ("product", "product"),
    ("test", "test"),
    ("ops", "ops"),
    ("qc", "qc"),
    ("admin", "admin"),
];

/// How a local user is shown.
pub fn display_name(user: &str) -> String {
    match user {
        "qc" => "QC".to_string(),
        u => {
            let mut c = u.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        }
    }
}

/// The channel of `user`'s direct messages.
pub fn dm_channel(user: &str) -> String {
    format!("@{user}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_users_have_readable_names() {
        assert_eq!(super::display_name("qc"), "QC");
        assert_eq!(super::display_name("product"), "Product");
    }
}
