//! What is wrong with a command line, as the person who typed it is told.

use super::Verb;

/// What is wrong with a command line; each has a template `usage_<code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    UnknownCommand(String),
    UnknownVerb {
        command: String,
        word: String,
    },
    MissingTicket,
    BadTicket(String),
    BadScope(String),
    MissingRole,
    MissingUser,
    /// A word that should have been a mention (`@bob` typed as plain text).
    NotAMention(String),
    /// `platform:user-id` whose id is not one that platform issues.
    BadUserId(String),
    /// `--to` without a baseline number, or not a number.
    BadBaseline(String),
    MissingApplication,
    Unexpected(String),
    /// A swimlane command without the lane's name.
    MissingLane,
    /// `--days` or a renewal's days: not a whole number from 1 to 365.
    BadDays(String),
    /// `--for` without what the lane is for.
    MissingPurpose,
    /// `apps NAME` without `add`/`remove` and an application.
    BadAppsChange(String),
    /// A command that needs a reason was given none.
    MissingReason,
    /// `--for` of a freeze: not a duration.
    BadDuration(String),
    /// Not a freeze's number.
    BadFreeze(String),
    /// `scale` without a number of replicas from 0 to 1000.
    BadReplicas(String),
    /// A deploy without the version to deploy.
    MissingVersion,
    /// A token command without the token's name.
    MissingTokenName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub verb: Option<Verb>,
    pub problem: Problem,
}

impl Problem {
    pub fn code(&self) -> &'static str {
        match self {
            Problem::UnknownCommand(_) => "unknown_command",
            Problem::UnknownVerb { .. } => "unknown_verb",
            Problem::MissingTicket => "missing_ticket",
            Problem::BadTicket(_) => "bad_ticket",
            Problem::BadScope(_) => "bad_scope",
            Problem::MissingRole => "missing_role",
            Problem::MissingUser => "missing_user",
            Problem::NotAMention(_) => "not_a_mention",
            Problem::BadUserId(_) => "bad_user_id",
            Problem::BadBaseline(_) => "bad_baseline",
            Problem::MissingApplication => "missing_application",
            Problem::Unexpected(_) => "unexpected",
            Problem::MissingLane => "missing_lane",
            Problem::BadDays(_) => "bad_days",
            Problem::MissingPurpose => "missing_purpose",
            Problem::BadAppsChange(_) => "bad_apps_change",
            Problem::MissingReason => "missing_reason",
            Problem::BadDuration(_) => "bad_duration",
            Problem::BadFreeze(_) => "bad_freeze",
            Problem::BadReplicas(_) => "bad_replicas",
            Problem::MissingVersion => "missing_version",
            Problem::MissingTokenName => "missing_token_name",
        }
    }

    /// The word at fault, for the template.
    pub fn word(&self) -> &str {
        match self {
            Problem::UnknownCommand(w)
            | Problem::BadTicket(w)
            | Problem::BadScope(w)
            | Problem::NotAMention(w)
            | Problem::BadUserId(w)
            | Problem::BadBaseline(w)
            | Problem::BadDays(w)
            | Problem::BadAppsChange(w)
            | Problem::BadDuration(w)
            | Problem::BadReplicas(w)
            | Problem::BadFreeze(w)
            | Problem::Unexpected(w) => w,
            Problem::UnknownVerb { word, .. } => word,
            Problem::MissingTicket
            | Problem::MissingRole
            | Problem::MissingUser
            | Problem::MissingApplication
            | Problem::MissingLane
            | Problem::MissingPurpose
            | Problem::MissingReason
            | Problem::MissingVersion
            | Problem::MissingTokenName => "",
        }
    }
}
