use serde::{Deserialize, Serialize};
use std::fmt;

/// A person acting through one chat platform: `slack:U123`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Actor {
    pub platform: String,
    pub user_id: String,
}

impl Actor {
    pub fn new(platform: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            platform: platform.into(),
            user_id: user_id.into(),
        }
    }

    /// Parses `platform:user_id` as written in the configuration file.
    pub fn parse(s: &str) -> Option<Self> {
        let (platform, user) = s.split_once(':')?;
        let platform = platform.trim();
        let user = user.trim();
        if platform.is_empty() || user.is_empty() || !platform.chars().all(|c| c.is_ascii_lowercase()) {
            return None;
        }
        Some(Self::new(platform, user))
    }

    /// Parses a member named by a person (configuration file, `/role add`, `/role link`):
    /// `platform:user-id` on a platform releasebot speaks, with an id of the shape that
    /// platform issues. The error says what is wrong.
    pub fn member(s: &str) -> Result<Self, String> {
        let a =
            Self::parse(s).ok_or_else(|| format!("\"{s}\" is not of the form platform:user-id (slack:U0123ABCD)"))?;
        match id_problem(&a.platform, &a.user_id) {
            None => Ok(a),
            Some(why) if PLATFORMS.contains(&a.platform.as_str()) => Err(format!("\"{s}\": {why}")),
            Some(why) => Err(why),
        }
    }

    /// Whether the id has the shape its platform issues (so it is safe in a mention).
    pub fn is_well_formed(&self) -> bool {
        id_problem(&self.platform, &self.user_id).is_none()
    }
}

/// The platforms releasebot speaks.
pub const PLATFORMS: [&str; 4] = ["slack", "discord", "dingtalk", "local"];

/// What is wrong with `user` as an id of `platform`, if anything: Slack user ids (`U…`,
/// `W…`, capital letters and digits), Discord snowflakes (a number), DingTalk staff ids
/// (letters, digits, `-`, `_`).
pub fn id_problem(platform: &str, user: &str) -> Option<String> {
    let ok = match platform {
        "slack" => {
            (2..=24).contains(&user.len())
                && matches!(user.as_bytes()[0], b'U' | b'W')
                && user.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }
        "discord" => (1..=20).contains(&user.len()) && user.parse::<u64>().is_ok(),
        "dingtalk" => {
            (1..=64).contains(&user.len())
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        // The local chat's people (`releasebot demo`, the browser chat).
        "local" => {
            (1..=32).contains(&user.len())
                && user
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        }
        other => {
            return Some(format!(
                "unknown platform \"{other}\" (expected one of slack, discord, dingtalk, local)"
            ))
        }
    };
    (!ok).then(|| {
        match platform {
            "slack" => "a Slack user id starts with U or W and has only capital letters and digits (U0123ABCD)",
            "discord" => "a Discord user id is a number (its snowflake, e.g. 80351110224678912)",
            "local" => "a local chat user id has only lowercase letters, digits, '-' and '_'",
            _ => "a DingTalk staff id has only letters, digits, '-' and '_'",
        }
        .to_string()
    })
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platform_and_user() {
        assert_eq!(Actor::parse("slack:U1"), Some(Actor::new("slack", "U1")));
        assert_eq!(Actor::parse("U1"), None);
        assert_eq!(Actor::parse("Slack:U1"), None);
        assert_eq!(Actor::parse("slack:"), None);
        assert_eq!(Actor::new("slack", "U1").to_string(), "slack:U1");
    }

    #[test]
    fn members_have_the_shape_of_their_platforms_ids() {
        assert_eq!(Actor::member("slack:U0123ABCD"), Ok(Actor::new("slack", "U0123ABCD")));
        assert!(Actor::member("slack:W42").is_ok());
        assert!(Actor::member("discord:80351110224678912").is_ok());
        assert!(Actor::member("dingtalk:manager-01_x").is_ok());
        for bad in [
            "slack:U9X><!channel>",
            "slack:not a user id",
            "slack:u123",
            "slack:C0123",
            "discord:12ab",
            "discord:<@&123>",
            "dingtalk:a<b",
            "dingtalk:a b",
            "teams:U1",
            "U1",
        ] {
            assert!(Actor::member(bad).is_err(), "{bad}");
        }
        assert!(!Actor::new("slack", "U9X><!channel>").is_well_formed());
    }
}
