//! The command grammar: one definition from which parsing and help are derived.
//! Pure: no I/O. Platforms hand over the text after the command name, with user
//! mentions already turned into neutral `<@platform:user>` tokens.

use crate::domain::ticket::TicketId;
use crate::domain::Actor;
use std::collections::BTreeMap;

/// Every command. Adding one without usage and help text does not compile:
/// `usage` and `help_key` match exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    ReleaseNew,
    ReleaseShow,
    ReleaseList,
    ReleaseCancel,
    ReleasePlan,
    ReleaseStatus,
    ReleaseRollback,
    ReleaseBaselines,
    ReleaseHelp,
    ReleaseApprove,
    ReleaseReject,
    ReleaseResubmit,
    RoleAdd,
    RoleRemove,
    RoleList,
    RoleLink,
    SwimlaneCreate,
    SwimlaneList,
    SwimlaneShow,
    SwimlaneRenew,
    SwimlaneDelete,
    SwimlaneApps,
    SwimlaneHelp,
    ReleaseOverride,
    FreezeStart,
    FreezeEnd,
    FreezeList,
    Lock,
    Unlock,
}

/// The top-level commands, each a slash command on Slack and Discord and the first word
/// of an @-mention on DingTalk.
pub const COMMANDS: [&str; 6] = ["release", "role", "swimlane", "freeze", "lock", "unlock"];

/// Commands that are one verb (`/lock APP …`): the verb has no word of its own.
const ONE_VERB: [(&str, Verb); 2] = [("lock", Verb::Lock), ("unlock", Verb::Unlock)];

impl Verb {
    pub const ALL: [Verb; 29] = [
        Verb::ReleaseNew,
        Verb::ReleaseShow,
        Verb::ReleaseList,
        Verb::ReleaseCancel,
        Verb::ReleasePlan,
        Verb::ReleaseStatus,
        Verb::ReleaseRollback,
        Verb::ReleaseBaselines,
        Verb::ReleaseHelp,
        Verb::ReleaseApprove,
        Verb::ReleaseReject,
        Verb::ReleaseResubmit,
        Verb::RoleAdd,
        Verb::RoleRemove,
        Verb::RoleList,
        Verb::RoleLink,
        Verb::SwimlaneCreate,
        Verb::SwimlaneList,
        Verb::SwimlaneShow,
        Verb::SwimlaneRenew,
        Verb::SwimlaneDelete,
        Verb::SwimlaneApps,
        Verb::SwimlaneHelp,
        Verb::ReleaseOverride,
        Verb::FreezeStart,
        Verb::FreezeEnd,
        Verb::FreezeList,
        Verb::Lock,
        Verb::Unlock,
    ];

    /// The top-level command (`/release`, `/role`).
    pub fn command(self) -> &'static str {
        match self {
            Verb::ReleaseNew
            | Verb::ReleaseShow
            | Verb::ReleaseList
            | Verb::ReleaseCancel
            | Verb::ReleasePlan
            | Verb::ReleaseStatus
            | Verb::ReleaseRollback
            | Verb::ReleaseBaselines
            | Verb::ReleaseHelp
            | Verb::ReleaseApprove
            | Verb::ReleaseReject
            | Verb::ReleaseResubmit
            | Verb::ReleaseOverride => "release",
            Verb::FreezeStart | Verb::FreezeEnd | Verb::FreezeList => "freeze",
            Verb::Lock => "lock",
            Verb::Unlock => "unlock",
            Verb::RoleAdd | Verb::RoleRemove | Verb::RoleList | Verb::RoleLink => "role",
            Verb::SwimlaneCreate
            | Verb::SwimlaneList
            | Verb::SwimlaneShow
            | Verb::SwimlaneRenew
            | Verb::SwimlaneDelete
            | Verb::SwimlaneApps
            | Verb::SwimlaneHelp => "swimlane",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Verb::ReleaseNew => "new",
            Verb::ReleaseShow => "show",
            Verb::ReleaseList => "list",
            Verb::ReleaseCancel => "cancel",
            Verb::ReleasePlan => "plan",
            Verb::ReleaseStatus => "status",
            Verb::ReleaseRollback => "rollback",
            Verb::ReleaseBaselines => "baselines",
            Verb::ReleaseHelp => "help",
            Verb::ReleaseApprove => "approve",
            Verb::ReleaseReject => "reject",
            Verb::ReleaseResubmit => "resubmit",
            Verb::RoleAdd => "add",
            Verb::RoleRemove => "remove",
            Verb::RoleList => "list",
            Verb::RoleLink => "link",
            Verb::SwimlaneCreate => "create",
            Verb::SwimlaneList => "list",
            Verb::SwimlaneShow => "show",
            Verb::SwimlaneRenew => "renew",
            Verb::SwimlaneDelete => "delete",
            Verb::SwimlaneApps => "apps",
            Verb::SwimlaneHelp => "help",
            Verb::ReleaseOverride => "override",
            Verb::FreezeStart => "start",
            Verb::FreezeEnd => "end",
            Verb::FreezeList => "list",
            Verb::Lock | Verb::Unlock => "",
        }
    }

    /// Syntax, the same in every language.
    pub fn usage(self) -> &'static str {
        match self {
            Verb::ReleaseNew => "/release new [service] [field=value …]",
            Verb::ReleaseShow => "/release show REL-ID",
            Verb::ReleaseList => "/release list [mine|pending|all]",
            Verb::ReleaseCancel => "/release cancel REL-ID [reason]",
            Verb::ReleasePlan => "/release plan REL-ID",
            Verb::ReleaseStatus => "/release status REL-ID",
            Verb::ReleaseRollback => "/release rollback REL-ID [--to BASELINE]",
            Verb::ReleaseBaselines => "/release baselines APPLICATION [ENVIRONMENT]",
            Verb::ReleaseHelp => "/release help",
            Verb::ReleaseApprove => "/release approve REL-ID [field=value …]",
            Verb::ReleaseReject => "/release reject REL-ID reason",
            Verb::ReleaseResubmit => "/release resubmit REL-ID [field=value …]",
            Verb::RoleAdd => "/role add ROLE @user [application]",
            Verb::RoleRemove => "/role remove ROLE @user [application]",
            Verb::RoleList => "/role list",
            Verb::RoleLink => "/role link @user platform:user-id",
            Verb::SwimlaneCreate => "/swimlane create NAME [app …] [--for REL-ID|\"title\"] [--days N]",
            Verb::SwimlaneList => "/swimlane list [mine|all]",
            Verb::SwimlaneShow => "/swimlane show NAME",
            Verb::SwimlaneRenew => "/swimlane renew NAME [days]",
            Verb::SwimlaneDelete => "/swimlane delete NAME [--confirm]",
            Verb::SwimlaneApps => "/swimlane apps NAME add|remove APP",
            Verb::SwimlaneHelp => "/swimlane help",
            Verb::ReleaseOverride => "/release override REL-ID reason",
            Verb::FreezeStart => "/freeze start APP|all [--env ENV] [--for DURATION] reason",
            Verb::FreezeEnd => "/freeze end FREEZE-ID",
            Verb::FreezeList => "/freeze list",
            Verb::Lock => "/lock APP [ENV] reason",
            Verb::Unlock => "/unlock APP [ENV]",
        }
    }

    /// The template that explains it (`messages/*/help_*.hbs`).
    pub fn help_key(self) -> &'static str {
        match self {
            Verb::ReleaseNew => "help_release_new",
            Verb::ReleaseShow => "help_release_show",
            Verb::ReleaseList => "help_release_list",
            Verb::ReleaseCancel => "help_release_cancel",
            Verb::ReleasePlan => "help_release_plan",
            Verb::ReleaseStatus => "help_release_status",
            Verb::ReleaseRollback => "help_release_rollback",
            Verb::ReleaseBaselines => "help_release_baselines",
            Verb::ReleaseHelp => "help_release_help",
            Verb::ReleaseApprove => "help_release_approve",
            Verb::ReleaseReject => "help_release_reject",
            Verb::ReleaseResubmit => "help_release_resubmit",
            Verb::RoleAdd => "help_role_add",
            Verb::RoleRemove => "help_role_remove",
            Verb::RoleList => "help_role_list",
            Verb::RoleLink => "help_role_link",
            Verb::SwimlaneCreate => "help_swimlane_create",
            Verb::SwimlaneList => "help_swimlane_list",
            Verb::SwimlaneShow => "help_swimlane_show",
            Verb::SwimlaneRenew => "help_swimlane_renew",
            Verb::SwimlaneDelete => "help_swimlane_delete",
            Verb::SwimlaneApps => "help_swimlane_apps",
            Verb::SwimlaneHelp => "help_swimlane_help",
            Verb::ReleaseOverride => "help_release_override",
            Verb::FreezeStart => "help_freeze_start",
            Verb::FreezeEnd => "help_freeze_end",
            Verb::FreezeList => "help_freeze_list",
            Verb::Lock => "help_lock",
            Verb::Unlock => "help_unlock",
        }
    }

    fn find(command: &str, word: &str) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|v| v.command() == command && v.word().eq_ignore_ascii_case(word))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListScope {
    Mine,
    Pending,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Opens the form, or submits it at once when `values` are given (`field=value`).
    ReleaseNew {
        service: Option<String>,
        values: BTreeMap<String, String>,
    },
    /// Decides the ticket's current stage without a form (text-only platforms, power users).
    ReleaseApprove {
        id: TicketId,
        values: BTreeMap<String, String>,
    },
    ReleaseReject {
        id: TicketId,
        reason: Option<String>,
    },
    ReleaseResubmit {
        id: TicketId,
        values: BTreeMap<String, String>,
    },
    ReleaseShow {
        id: TicketId,
    },
    ReleaseList {
        scope: ListScope,
    },
    ReleaseCancel {
        id: TicketId,
        reason: Option<String>,
    },
    ReleasePlan {
        id: TicketId,
    },
    ReleaseStatus {
        id: TicketId,
    },
    ReleaseRollback {
        id: TicketId,
        to: Option<i64>,
    },
    ReleaseBaselines {
        application: String,
        environment: Option<String>,
    },
    Help {
        command: String,
    },
    RoleAdd {
        role: String,
        user: Actor,
        application: Option<String>,
    },
    RoleRemove {
        role: String,
        user: Actor,
        application: Option<String>,
    },
    RoleList,
    /// Links two identities of one person: roles held by either count for both.
    RoleLink {
        user: Actor,
        other: Actor,
    },
    /// `name` as typed: the handler shows what it becomes as a namespace name.
    SwimlaneCreate {
        name: String,
        apps: Vec<String>,
        purpose: Option<String>,
        days: Option<u32>,
    },
    SwimlaneList {
        all: bool,
    },
    SwimlaneShow {
        name: String,
    },
    SwimlaneRenew {
        name: String,
        days: Option<u32>,
    },
    SwimlaneDelete {
        name: String,
        confirmed: bool,
    },
    SwimlaneApps {
        name: String,
        add: bool,
        app: String,
    },
    /// Lets one release through the freezes and locks that block it.
    ReleaseOverride {
        id: TicketId,
        reason: String,
    },
    FreezeStart {
        /// `None`: every application.
        application: Option<String>,
        environment: Option<String>,
        for_ms: Option<i64>,
        reason: String,
    },
    FreezeEnd {
        id: i64,
    },
    FreezeList,
    /// `words`: `[ENV] reason` (the handler knows the environments).
    Lock {
        application: String,
        words: Vec<String>,
    },
    Unlock {
        application: String,
        environment: Option<String>,
    },
}

impl Command {
    /// The ticket a command is about, if it names one.
    pub fn ticket(&self) -> Option<TicketId> {
        match self {
            Command::ReleaseApprove { id, .. }
            | Command::ReleaseReject { id, .. }
            | Command::ReleaseResubmit { id, .. }
            | Command::ReleaseShow { id }
            | Command::ReleaseCancel { id, .. }
            | Command::ReleasePlan { id }
            | Command::ReleaseStatus { id }
            | Command::ReleaseRollback { id, .. }
            | Command::ReleaseOverride { id, .. } => Some(*id),
            Command::ReleaseNew { .. }
            | Command::ReleaseList { .. }
            | Command::ReleaseBaselines { .. }
            | Command::Help { .. }
            | Command::RoleAdd { .. }
            | Command::RoleRemove { .. }
            | Command::RoleList
            | Command::RoleLink { .. }
            | Command::SwimlaneCreate { .. }
            | Command::SwimlaneList { .. }
            | Command::SwimlaneShow { .. }
            | Command::SwimlaneRenew { .. }
            | Command::SwimlaneDelete { .. }
            | Command::SwimlaneApps { .. }
            | Command::FreezeStart { .. }
            | Command::FreezeEnd { .. }
            | Command::FreezeList
            | Command::Lock { .. }
            | Command::Unlock { .. } => None,
        }
    }

    /// Whether it changes the release calendar (handled in order with the others).
    pub fn changes_calendar(&self) -> bool {
        matches!(
            self,
            Command::FreezeStart { .. } | Command::FreezeEnd { .. } | Command::Lock { .. } | Command::Unlock { .. }
        )
    }

    /// Whether it is about swimlanes (handled in order with every other lane event).
    pub fn about_lanes(&self) -> bool {
        matches!(
            self,
            Command::SwimlaneCreate { .. }
                | Command::SwimlaneList { .. }
                | Command::SwimlaneShow { .. }
                | Command::SwimlaneRenew { .. }
                | Command::SwimlaneDelete { .. }
                | Command::SwimlaneApps { .. }
        ) || matches!(self, Command::Help { command } if command == "swimlane")
    }

    /// Whether it changes who holds which role.
    pub fn changes_roles(&self) -> bool {
        matches!(
            self,
            Command::RoleAdd { .. } | Command::RoleRemove { .. } | Command::RoleLink { .. }
        )
    }
}

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
            | Problem::BadFreeze(w)
            | Problem::Unexpected(w) => w,
            Problem::UnknownVerb { word, .. } => word,
            Problem::MissingTicket
            | Problem::MissingRole
            | Problem::MissingUser
            | Problem::MissingApplication
            | Problem::MissingLane
            | Problem::MissingPurpose
            | Problem::MissingReason => "",
        }
    }
}

/// Platforms whose users may be named as `platform:user-id` in commands.
pub use crate::domain::actor::PLATFORMS;

/// Parses a neutral mention token `<@platform:user>`, or an explicit `platform:user-id`
/// (to name someone on another platform) whose id has the shape its platform issues.
pub fn parse_mention(token: &str) -> Result<Actor, Problem> {
    let inner = token
        .strip_prefix("<@")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(token);
    let Some(actor) = Actor::parse(inner).filter(|a| PLATFORMS.contains(&a.platform.as_str())) else {
        return Err(Problem::NotAMention(token.to_string()));
    };
    if !actor.is_well_formed() {
        return Err(Problem::BadUserId(token.to_string()));
    }
    Ok(actor)
}

/// Splits a command line into words; double quotes group words (`notes="two words"`).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' | '“' | '”' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// `field=value` (field: letters, digits, `_`, `-`, `.`).
fn key_value(word: &str) -> Option<(String, String)> {
    let (k, v) = word.split_once('=')?;
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then(|| (k.to_ascii_lowercase(), v.to_string()))
}

/// Separates `field=value` words from the others.
fn split_values(rest: &[String]) -> (Vec<String>, BTreeMap<String, String>) {
    let mut plain = Vec::new();
    let mut values = BTreeMap::new();
    for w in rest {
        match key_value(w) {
            Some((k, v)) => {
                values.insert(k, v);
            }
            None => plain.push(w.clone()),
        }
    }
    (plain, values)
}

fn err(verb: Verb, problem: Problem) -> CommandError {
    CommandError {
        verb: Some(verb),
        problem,
    }
}

/// Parses `text` given to `/command`.
pub fn parse(command: &str, text: &str) -> Result<Command, CommandError> {
    let command = command.trim().trim_start_matches('/').to_ascii_lowercase();
    if !COMMANDS.contains(&command.as_str()) {
        return Err(CommandError {
            verb: None,
            problem: Problem::UnknownCommand(command),
        });
    }
    let all = words(text);
    let mut words = all.iter().map(String::as_str);
    let one_verb = ONE_VERB.iter().find(|(c, _)| *c == command).map(|(_, v)| *v);
    let first = if one_verb.is_some() { None } else { words.next() };
    let found = match (one_verb, first) {
        (Some(v), _) if all.first().is_some_and(|w| w.eq_ignore_ascii_case("help")) => {
            return Ok(Command::Help {
                command: v.command().to_string(),
            })
        }
        (Some(v), _) => Some(v),
        (None, None) => return Ok(Command::Help { command }),
        (None, Some(word)) => Verb::find(&command, word),
    };
    let word = first.unwrap_or_default();
    let Some(verb) = found else {
        return Err(CommandError {
            verb: None,
            problem: Problem::UnknownVerb {
                command,
                word: word.to_string(),
            },
        });
    };
    let rest: Vec<&str> = words.collect();
    let ticket = |w: Option<&&str>| -> Result<TicketId, CommandError> {
        let w = w.ok_or_else(|| err(verb, Problem::MissingTicket))?;
        TicketId::parse(w).ok_or_else(|| err(verb, Problem::BadTicket(w.to_string())))
    };
    let no_more = |from: usize| -> Result<(), CommandError> {
        match rest.get(from) {
            Some(w) => Err(err(verb, Problem::Unexpected(w.to_string()))),
            None => Ok(()),
        }
    };
    let member = || -> Result<(String, Actor, Option<String>), CommandError> {
        let role = rest
            .first()
            .ok_or_else(|| err(verb, Problem::MissingRole))?
            .to_ascii_lowercase();
        let user = rest.get(1).ok_or_else(|| err(verb, Problem::MissingUser))?;
        let user = parse_mention(user).map_err(|p| err(verb, p))?;
        let app = rest.get(2).map(|s| s.to_string());
        no_more(3)?;
        Ok((role, user, app))
    };
    // `APPLICATION [ENVIRONMENT]` and nothing after.
    let app_and_env = || -> Result<(String, Option<String>), CommandError> {
        let application = rest
            .first()
            .ok_or_else(|| err(verb, Problem::MissingApplication))?
            .to_string();
        no_more(2)?;
        Ok((application, rest.get(1).map(|s| s.to_string())))
    };
    let owned: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
    match verb {
        Verb::ReleaseNew => {
            let (plain, values) = split_values(&owned);
            Ok(Command::ReleaseNew {
                service: (!plain.is_empty()).then(|| plain.join(" ")),
                values,
            })
        }
        Verb::ReleaseApprove | Verb::ReleaseResubmit => {
            let id = ticket(rest.first())?;
            let (plain, values) = split_values(&owned[1..]);
            if let Some(w) = plain.first() {
                return Err(err(verb, Problem::Unexpected(w.clone())));
            }
            Ok(if verb == Verb::ReleaseApprove {
                Command::ReleaseApprove { id, values }
            } else {
                Command::ReleaseResubmit { id, values }
            })
        }
        Verb::ReleaseReject => {
            let id = ticket(rest.first())?;
            let reason = (rest.len() > 1).then(|| rest[1..].join(" "));
            Ok(Command::ReleaseReject { id, reason })
        }
        Verb::RoleLink => {
            let user = rest.first().ok_or_else(|| err(verb, Problem::MissingUser))?;
            let user = parse_mention(user).map_err(|p| err(verb, p))?;
            let other = rest.get(1).ok_or_else(|| err(verb, Problem::MissingUser))?;
            let other = parse_mention(other).map_err(|p| err(verb, p))?;
            no_more(2)?;
            Ok(Command::RoleLink { user, other })
        }
        Verb::ReleaseShow => {
            let id = ticket(rest.first())?;
            no_more(1)?;
            Ok(Command::ReleaseShow { id })
        }
        Verb::ReleaseList => {
            let scope = match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                None | Some("pending") => ListScope::Pending,
                Some("mine") => ListScope::Mine,
                Some("all") => ListScope::All,
                Some(_) => return Err(err(verb, Problem::BadScope(rest[0].to_string()))),
            };
            no_more(1)?;
            Ok(Command::ReleaseList { scope })
        }
        Verb::ReleaseCancel => {
            let id = ticket(rest.first())?;
            let reason = (rest.len() > 1).then(|| rest[1..].join(" "));
            Ok(Command::ReleaseCancel { id, reason })
        }
        Verb::ReleasePlan => {
            let id = ticket(rest.first())?;
            no_more(1)?;
            Ok(Command::ReleasePlan { id })
        }
        Verb::ReleaseStatus => {
            let id = ticket(rest.first())?;
            no_more(1)?;
            Ok(Command::ReleaseStatus { id })
        }
        Verb::ReleaseRollback => {
            let id = ticket(rest.first())?;
            let to = match (rest.get(1), rest.get(2)) {
                (None, _) => None,
                (Some(&"--to"), Some(b)) => Some(
                    b.trim_start_matches('#')
                        .parse::<i64>()
                        .map_err(|_| err(verb, Problem::BadBaseline(b.to_string())))?,
                ),
                (Some(&"--to"), None) => return Err(err(verb, Problem::BadBaseline(String::new()))),
                (Some(w), _) => return Err(err(verb, Problem::Unexpected(w.to_string()))),
            };
            no_more(if to.is_some() { 3 } else { 1 })?;
            Ok(Command::ReleaseRollback { id, to })
        }
        Verb::ReleaseBaselines => {
            let (application, environment) = app_and_env()?;
            Ok(Command::ReleaseBaselines {
                application,
                environment,
            })
        }
        Verb::ReleaseHelp => Ok(Command::Help { command }),
        Verb::RoleAdd => {
            let (role, user, application) = member()?;
            Ok(Command::RoleAdd {
                role,
                user,
                application,
            })
        }
        Verb::RoleRemove => {
            let (role, user, application) = member()?;
            Ok(Command::RoleRemove {
                role,
                user,
                application,
            })
        }
        Verb::RoleList => {
            no_more(0)?;
            Ok(Command::RoleList)
        }
        Verb::SwimlaneHelp => Ok(Command::Help { command }),
        Verb::ReleaseOverride => {
            let id = ticket(rest.first())?;
            if rest.len() < 2 {
                return Err(err(verb, Problem::MissingReason));
            }
            Ok(Command::ReleaseOverride {
                id,
                reason: rest[1..].join(" "),
            })
        }
        Verb::FreezeStart => {
            let scope = rest.first().ok_or_else(|| err(verb, Problem::MissingApplication))?;
            let application = (!scope.eq_ignore_ascii_case("all")).then(|| scope.to_string());
            let (mut environment, mut for_ms, mut reason) = (None, None, Vec::new());
            let mut i = 1;
            while let Some(w) = rest.get(i) {
                match w.to_ascii_lowercase().as_str() {
                    "--env" => {
                        let e = rest
                            .get(i + 1)
                            .ok_or_else(|| err(verb, Problem::Unexpected(w.to_string())))?;
                        environment = Some(e.to_string());
                        i += 2;
                    }
                    "--for" => {
                        let d = rest.get(i + 1).copied().unwrap_or_default();
                        let span = crate::domain::schedule::parse_duration(d)
                            .ok()
                            .filter(|s| !s.is_zero())
                            .ok_or_else(|| err(verb, Problem::BadDuration(d.to_string())))?;
                        for_ms = Some(i64::try_from(span.as_millis()).unwrap_or(i64::MAX));
                        i += 2;
                    }
                    _ => {
                        reason.push(w.to_string());
                        i += 1;
                    }
                }
            }
            if reason.is_empty() {
                return Err(err(verb, Problem::MissingReason));
            }
            Ok(Command::FreezeStart {
                application,
                environment,
                for_ms,
                reason: reason.join(" "),
            })
        }
        Verb::FreezeEnd => {
            let w = rest
                .first()
                .ok_or_else(|| err(verb, Problem::BadFreeze(String::new())))?;
            let digits = w.trim_start_matches('#');
            let digits = digits
                .get(..4)
                .filter(|p| p.eq_ignore_ascii_case("frz-"))
                .map(|_| &digits[4..])
                .unwrap_or(digits);
            let id = digits
                .parse::<i64>()
                .map_err(|_| err(verb, Problem::BadFreeze(w.to_string())))?;
            no_more(1)?;
            Ok(Command::FreezeEnd { id })
        }
        Verb::FreezeList => {
            no_more(0)?;
            Ok(Command::FreezeList)
        }
        Verb::Lock => {
            let application = rest
                .first()
                .ok_or_else(|| err(verb, Problem::MissingApplication))?
                .to_string();
            if rest.len() < 2 {
                return Err(err(verb, Problem::MissingReason));
            }
            Ok(Command::Lock {
                application,
                words: owned[1..].to_vec(),
            })
        }
        Verb::Unlock => {
            let (application, environment) = app_and_env()?;
            Ok(Command::Unlock {
                application,
                environment,
            })
        }
        Verb::SwimlaneCreate => {
            let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
            let (mut apps, mut purpose, mut days) = (Vec::new(), None, None);
            let mut i = 1;
            while let Some(w) = rest.get(i) {
                match w.to_ascii_lowercase().as_str() {
                    "--for" => {
                        let v = rest.get(i + 1).ok_or_else(|| err(verb, Problem::MissingPurpose))?;
                        purpose = Some(v.to_string());
                        i += 2;
                    }
                    "--days" => {
                        days = Some(lane_days(rest.get(i + 1).copied()).map_err(|p| err(verb, p))?);
                        i += 2;
                    }
                    flag if flag.starts_with("--") => return Err(err(verb, Problem::Unexpected(w.to_string()))),
                    _ => {
                        apps.push(w.to_string());
                        i += 1;
                    }
                }
            }
            Ok(Command::SwimlaneCreate {
                name,
                apps,
                purpose,
                days,
            })
        }
        Verb::SwimlaneList => {
            let all = match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                None | Some("all") => true,
                Some("mine") => false,
                Some(_) => return Err(err(verb, Problem::BadScope(rest[0].to_string()))),
            };
            no_more(1)?;
            Ok(Command::SwimlaneList { all })
        }
        Verb::SwimlaneShow => {
            let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
            no_more(1)?;
            Ok(Command::SwimlaneShow { name })
        }
        Verb::SwimlaneRenew => {
            let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
            let days = match rest.get(1) {
                Some(d) => Some(lane_days(Some(d)).map_err(|p| err(verb, p))?),
                None => None,
            };
            no_more(2)?;
            Ok(Command::SwimlaneRenew { name, days })
        }
        Verb::SwimlaneDelete => {
            let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
            let confirmed = match rest.get(1) {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("--confirm") || w.eq_ignore_ascii_case("--yes") => true,
                Some(w) => return Err(err(verb, Problem::Unexpected(w.to_string()))),
            };
            no_more(2)?;
            Ok(Command::SwimlaneDelete { name, confirmed })
        }
        Verb::SwimlaneApps => {
            let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
            let op = rest.get(1).map(|s| s.to_ascii_lowercase());
            let add = match op.as_deref() {
                Some("add") => true,
                Some("remove") => false,
                _ => return Err(err(verb, Problem::BadAppsChange(op.unwrap_or_default()))),
            };
            let app = rest
                .get(2)
                .ok_or_else(|| err(verb, Problem::MissingApplication))?
                .to_string();
            no_more(3)?;
            Ok(Command::SwimlaneApps { name, add, app })
        }
    }
}

/// Days a lane is kept: a whole number from 1 to 365.
fn lane_days(word: Option<&str>) -> Result<u32, Problem> {
    let w = word.ok_or_else(|| Problem::BadDays(String::new()))?;
    match w.trim_end_matches(['d', 'D']).parse::<u32>() {
        Ok(n) if (1..=365).contains(&n) => Ok(n),
        _ => Err(Problem::BadDays(w.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_verb() {
        assert_eq!(
            parse("/release", "new"),
            Ok(Command::ReleaseNew {
                service: None,
                values: BTreeMap::new()
            })
        );
        assert_eq!(
            parse("release", "new App release"),
            Ok(Command::ReleaseNew {
                service: Some("App release".into()),
                values: BTreeMap::new()
            })
        );
        assert_eq!(
            parse("release", "new application=payments notes=\"two words\" md5=ab=cd"),
            Ok(Command::ReleaseNew {
                service: None,
                values: [("application", "payments"), ("notes", "two words"), ("md5", "ab=cd")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
        );
        assert_eq!(
            parse("release", "approve REL-2 evaluation=pass test_summary=\"all green\""),
            Ok(Command::ReleaseApprove {
                id: TicketId(2),
                values: [("evaluation", "pass"), ("test_summary", "all green")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
        );
        assert_eq!(
            parse("release", "reject REL-2 the build is broken"),
            Ok(Command::ReleaseReject {
                id: TicketId(2),
                reason: Some("the build is broken".into())
            })
        );
        assert_eq!(
            parse("role", "link <@slack:U1> dingtalk:manager7"),
            Ok(Command::RoleLink {
                user: Actor::new("slack", "U1"),
                other: Actor::new("dingtalk", "manager7")
            })
        );
        assert_eq!(
            parse("role", "add qc discord:42"),
            Ok(Command::RoleAdd {
                role: "qc".into(),
                user: Actor::new("discord", "42"),
                application: None
            })
        );
        assert_eq!(
            parse("release", "show REL-4"),
            Ok(Command::ReleaseShow { id: TicketId(4) })
        );
        assert_eq!(
            parse("release", "list"),
            Ok(Command::ReleaseList {
                scope: ListScope::Pending
            })
        );
        assert_eq!(
            parse("release", "LIST mine"),
            Ok(Command::ReleaseList { scope: ListScope::Mine })
        );
        assert_eq!(
            parse("release", "cancel 3 wrong build"),
            Ok(Command::ReleaseCancel {
                id: TicketId(3),
                reason: Some("wrong build".into())
            })
        );
        assert_eq!(
            parse("release", ""),
            Ok(Command::Help {
                command: "release".into()
            })
        );
        assert_eq!(
            parse("release", "help"),
            Ok(Command::Help {
                command: "release".into()
            })
        );
        assert_eq!(
            parse("role", "add QC <@slack:U1> payments"),
            Ok(Command::RoleAdd {
                role: "qc".into(),
                user: Actor::new("slack", "U1"),
                application: Some("payments".into())
            })
        );
        assert_eq!(
            parse("role", "remove qc <@slack:U1>"),
            Ok(Command::RoleRemove {
                role: "qc".into(),
                user: Actor::new("slack", "U1"),
                application: None
            })
        );
        assert_eq!(parse("role", "list"), Ok(Command::RoleList));
        assert_eq!(
            parse(
                "swimlane",
                "create Feature/Login web api --for \"new login page\" --days 3"
            ),
            Ok(Command::SwimlaneCreate {
                name: "Feature/Login".into(),
                apps: vec!["web".into(), "api".into()],
                purpose: Some("new login page".into()),
                days: Some(3)
            })
        );
        assert_eq!(parse("swimlane", "list mine"), Ok(Command::SwimlaneList { all: false }));
        assert_eq!(
            parse("swimlane", "renew login 10d"),
            Ok(Command::SwimlaneRenew {
                name: "login".into(),
                days: Some(10)
            })
        );
        assert_eq!(
            parse("swimlane", "delete login --confirm"),
            Ok(Command::SwimlaneDelete {
                name: "login".into(),
                confirmed: true
            })
        );
        assert_eq!(
            parse("swimlane", "apps login remove web"),
            Ok(Command::SwimlaneApps {
                name: "login".into(),
                add: false,
                app: "web".into()
            })
        );
        assert_eq!(
            parse("swimlane", "help"),
            Ok(Command::Help {
                command: "swimlane".into()
            })
        );
    }

    #[test]
    fn calendar_commands_parse() {
        assert_eq!(
            parse("freeze", "start payments --env prod --for 4h db migration"),
            Ok(Command::FreezeStart {
                application: Some("payments".into()),
                environment: Some("prod".into()),
                for_ms: Some(4 * 3_600_000),
                reason: "db migration".into()
            })
        );
        assert_eq!(
            parse("freeze", "start all year end"),
            Ok(Command::FreezeStart {
                application: None,
                environment: None,
                for_ms: None,
                reason: "year end".into()
            })
        );
        assert_eq!(parse("freeze", "end FRZ-3"), Ok(Command::FreezeEnd { id: 3 }));
        assert_eq!(parse("freeze", "list"), Ok(Command::FreezeList));
        assert_eq!(
            parse("lock", "payments prod incident 42"),
            Ok(Command::Lock {
                application: "payments".into(),
                words: vec!["prod".into(), "incident".into(), "42".into()]
            })
        );
        assert_eq!(
            parse("unlock", "payments"),
            Ok(Command::Unlock {
                application: "payments".into(),
                environment: None
            })
        );
        assert_eq!(parse("lock", "help"), Ok(Command::Help { command: "lock".into() }));
        assert_eq!(
            parse("release", "override REL-4 the fix must ship"),
            Ok(Command::ReleaseOverride {
                id: TicketId(4),
                reason: "the fix must ship".into()
            })
        );
        let e = |c: &str, t: &str| parse(c, t).unwrap_err().problem;
        assert_eq!(e("release", "override REL-4"), Problem::MissingReason);
        assert_eq!(e("freeze", "start payments"), Problem::MissingReason);
        assert_eq!(
            e("freeze", "start all --for soon x"),
            Problem::BadDuration("soon".into())
        );
        assert_eq!(e("freeze", "end x"), Problem::BadFreeze("x".into()));
        assert_eq!(e("lock", "payments"), Problem::MissingReason);
        assert_eq!(e("lock", ""), Problem::MissingApplication);
    }

    #[test]
    fn swimlane_mistakes_are_named() {
        let e = |t: &str| parse("swimlane", t).unwrap_err().problem;
        assert_eq!(e("create"), Problem::MissingLane);
        assert_eq!(e("create x --days 0"), Problem::BadDays("0".into()));
        assert_eq!(e("create x --days"), Problem::BadDays(String::new()));
        assert_eq!(e("create x --for"), Problem::MissingPurpose);
        assert_eq!(e("create x --color red"), Problem::Unexpected("--color".into()));
        assert_eq!(e("renew x forever"), Problem::BadDays("forever".into()));
        assert_eq!(e("apps x rename y"), Problem::BadAppsChange("rename".into()));
        assert_eq!(e("apps x add"), Problem::MissingApplication);
        assert_eq!(e("delete x now"), Problem::Unexpected("now".into()));
    }

    #[test]
    fn bad_input_names_the_problem_and_the_verb() {
        let e = |c: &str, t: &str| parse(c, t).unwrap_err();
        assert_eq!(e("deploy", "x").problem, Problem::UnknownCommand("deploy".into()));
        assert_eq!(
            e("release", "ship").problem,
            Problem::UnknownVerb {
                command: "release".into(),
                word: "ship".into()
            }
        );
        assert_eq!(
            e("release", "show"),
            CommandError {
                verb: Some(Verb::ReleaseShow),
                problem: Problem::MissingTicket
            }
        );
        assert_eq!(e("release", "show abc").problem, Problem::BadTicket("abc".into()));
        assert_eq!(
            e("release", "show REL-1 extra").problem,
            Problem::Unexpected("extra".into())
        );
        assert_eq!(e("release", "list soon").problem, Problem::BadScope("soon".into()));
        assert_eq!(e("role", "add").problem, Problem::MissingRole);
        assert_eq!(e("role", "add qc").problem, Problem::MissingUser);
        assert_eq!(e("role", "add qc @bob").problem, Problem::NotAMention("@bob".into()));
        assert_eq!(e("role", "list all").problem, Problem::Unexpected("all".into()));
        assert_eq!(e("role", "link <@slack:U1>").problem, Problem::MissingUser);
        assert_eq!(
            e("role", "link <@slack:U1> bob").problem,
            Problem::NotAMention("bob".into())
        );
        assert_eq!(
            e("release", "approve REL-1 looks good").problem,
            Problem::Unexpected("looks".into())
        );
        assert_eq!(e("release", "reject").problem, Problem::MissingTicket);
    }

    #[test]
    fn every_verb_has_usage_starting_with_its_command() {
        for v in Verb::ALL {
            assert!(
                v.usage().starts_with(&format!("/{} {}", v.command(), v.word())),
                "{v:?}"
            );
        }
    }
}
