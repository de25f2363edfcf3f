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
}
