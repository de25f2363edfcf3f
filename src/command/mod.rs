//! The command grammar: one definition from which parsing and help are derived.
//! Pure: no I/O. Platforms hand over the text after the command name, with user
//! mentions already turned into neutral `<@platform:user>` tokens.

use crate::domain::ticket::TicketId;
use crate::domain::Actor;
use std::collections::BTreeMap;

mod calendar;
mod lex;
mod problem;
mod release;
mod role;
mod swimlane;
mod token;

use lex::split_values;
pub use lex::{parse_mention, words, PLATFORMS};
pub use problem::{CommandError, Problem};

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
    ReleaseScale,
    ReleaseRestart,
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
    SwimlaneDeploy,
    SwimlaneHelp,
    ReleaseOverride,
    FreezeStart,
    FreezeEnd,
    FreezeList,
    Lock,
    Unlock,
    TokenCreate,
    TokenList,
    TokenRevoke,
}

/// The top-level commands, each a slash command on Slack and Discord and the first word
/// of an @-mention on DingTalk.
pub const COMMANDS: [&str; 7] = ["release", "role", "swimlane", "freeze", "lock", "unlock", "token"];

/// Commands that are one verb (`/lock APP …`): the verb has no word of its own.
const ONE_VERB: [(&str, Verb); 2] = [("lock", Verb::Lock), ("unlock", Verb::Unlock)];

impl Verb {
    pub const ALL: [Verb; 35] = [
        Verb::ReleaseNew,
        Verb::ReleaseShow,
        Verb::ReleaseList,
        Verb::ReleaseCancel,
        Verb::ReleasePlan,
        Verb::ReleaseStatus,
        Verb::ReleaseRollback,
        Verb::ReleaseBaselines,
        Verb::ReleaseScale,
        Verb::ReleaseRestart,
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
        Verb::SwimlaneDeploy,
        Verb::SwimlaneHelp,
        Verb::ReleaseOverride,
        Verb::FreezeStart,
        Verb::FreezeEnd,
        Verb::FreezeList,
        Verb::Lock,
        Verb::Unlock,
        Verb::TokenCreate,
        Verb::TokenList,
        Verb::TokenRevoke,
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
            | Verb::ReleaseScale
            | Verb::ReleaseRestart
            | Verb::ReleaseHelp
            | Verb::ReleaseApprove
            | Verb::ReleaseReject
            | Verb::ReleaseResubmit
            | Verb::ReleaseOverride => "release",
            Verb::FreezeStart | Verb::FreezeEnd | Verb::FreezeList => "freeze",
            Verb::Lock => "lock",
            Verb::Unlock => "unlock",
            Verb::TokenCreate | Verb::TokenList | Verb::TokenRevoke => "token",
            Verb::RoleAdd | Verb::RoleRemove | Verb::RoleList | Verb::RoleLink => "role",
            Verb::SwimlaneCreate
            | Verb::SwimlaneList
            | Verb::SwimlaneShow
            | Verb::SwimlaneRenew
            | Verb::SwimlaneDelete
            | Verb::SwimlaneApps
            | Verb::SwimlaneDeploy
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
            Verb::ReleaseScale => "scale",
            Verb::ReleaseRestart => "restart",
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
            Verb::SwimlaneDeploy => "deploy",
            Verb::SwimlaneHelp => "help",
            Verb::ReleaseOverride => "override",
            Verb::FreezeStart => "start",
            Verb::FreezeEnd => "end",
            Verb::FreezeList => "list",
            Verb::Lock | Verb::Unlock => "",
            Verb::TokenCreate => "create",
            Verb::TokenList => "list",
            Verb::TokenRevoke => "revoke",
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
            Verb::ReleaseScale => "/release scale APPLICATION [ENVIRONMENT] REPLICAS",
            Verb::ReleaseRestart => "/release restart APPLICATION [ENVIRONMENT]",
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
            Verb::SwimlaneDeploy => "/swimlane deploy NAME APP VERSION",
            Verb::SwimlaneHelp => "/swimlane help",
            Verb::ReleaseOverride => "/release override REL-ID reason",
            Verb::FreezeStart => "/freeze start APP|all [--env ENV] [--for DURATION] reason",
            Verb::FreezeEnd => "/freeze end FREEZE-ID",
            Verb::FreezeList => "/freeze list",
            Verb::Lock => "/lock APP [ENV] reason",
            Verb::Unlock => "/unlock APP [ENV]",
            Verb::TokenCreate => "/token create NAME APP …",
            Verb::TokenList => "/token list",
            Verb::TokenRevoke => "/token revoke NAME",
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
            Verb::ReleaseScale => "help_release_scale",
            Verb::ReleaseRestart => "help_release_restart",
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
            Verb::SwimlaneDeploy => "help_swimlane_deploy",
            Verb::SwimlaneHelp => "help_swimlane_help",
            Verb::ReleaseOverride => "help_release_override",
            Verb::FreezeStart => "help_freeze_start",
            Verb::FreezeEnd => "help_freeze_end",
            Verb::FreezeList => "help_freeze_list",
            Verb::Lock => "help_lock",
            Verb::Unlock => "help_unlock",
            Verb::TokenCreate => "help_token_create",
            Verb::TokenList => "help_token_list",
            Verb::TokenRevoke => "help_token_revoke",
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
    /// A change record: the application's Deployment scaled now.
    ReleaseScale {
        application: String,
        environment: Option<String>,
        replicas: i32,
    },
    /// A change record: the application's pods restarted now.
    ReleaseRestart {
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
    /// One of a lane's applications deployed into the lane's namespace.
    SwimlaneDeploy {
        name: String,
        app: String,
        version: String,
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
    /// An API token for pipelines (created on the server: see `bot::tokens`).
    TokenCreate {
        name: String,
        applications: Vec<String>,
    },
    TokenList,
    TokenRevoke {
        name: String,
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
            | Command::ReleaseScale { .. }
            | Command::ReleaseRestart { .. }
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
            | Command::SwimlaneDeploy { .. }
            | Command::FreezeStart { .. }
            | Command::FreezeEnd { .. }
            | Command::FreezeList
            | Command::Lock { .. }
            | Command::Unlock { .. }
            | Command::TokenCreate { .. }
            | Command::TokenList
            | Command::TokenRevoke { .. } => None,
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

/// Platforms whose users may be named as `platform:user-id` in commands.
pub(super) fn err(verb: Verb, problem: Problem) -> CommandError {
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
    let a = Args {
        verb,
        command,
        owned: rest.iter().map(|s| s.to_string()).collect(),
        rest,
    };
    match verb {
        Verb::ReleaseNew => release::new_ticket(&a),
        Verb::ReleaseApprove => release::approve_or_resubmit(&a),
        Verb::ReleaseResubmit => release::approve_or_resubmit(&a),
        Verb::ReleaseReject => release::reject(&a),
        Verb::RoleLink => role::link(&a),
        Verb::ReleaseShow => release::show(&a),
        Verb::ReleaseList => release::list(&a),
        Verb::ReleaseCancel => release::cancel(&a),
        Verb::ReleasePlan => release::plan(&a),
        Verb::ReleaseStatus => release::status(&a),
        Verb::ReleaseRollback => release::rollback(&a),
        Verb::ReleaseBaselines => release::baselines(&a),
        Verb::ReleaseScale => release::scale(&a),
        Verb::ReleaseRestart => release::restart(&a),
        Verb::ReleaseHelp => release::help(&a),
        Verb::TokenCreate => token::create(&a),
        Verb::TokenList => a.no_more(0).map(|_| Command::TokenList),
        Verb::TokenRevoke => token::revoke(&a),
        Verb::RoleAdd => role::add(&a),
        Verb::RoleRemove => role::remove(&a),
        Verb::RoleList => role::list(&a),
        Verb::SwimlaneHelp => swimlane::help(&a),
        Verb::ReleaseOverride => release::override_freeze(&a),
        Verb::FreezeStart => calendar::freeze_start(&a),
        Verb::FreezeEnd => calendar::freeze_end(&a),
        Verb::FreezeList => calendar::freeze_list(&a),
        Verb::Lock => calendar::lock(&a),
        Verb::Unlock => calendar::unlock(&a),
        Verb::SwimlaneCreate => swimlane::create(&a),
        Verb::SwimlaneList => swimlane::list(&a),
        Verb::SwimlaneShow => swimlane::show(&a),
        Verb::SwimlaneRenew => swimlane::renew(&a),
        Verb::SwimlaneDelete => swimlane::delete(&a),
        Verb::SwimlaneApps => swimlane::apps(&a),
        Verb::SwimlaneDeploy => swimlane::deploy(&a),
    }
}

/// What a verb's parser reads: the verb, its command's name and the words after the verb.
pub(super) struct Args<'a> {
    pub verb: Verb,
    pub command: String,
    pub rest: Vec<&'a str>,
    pub owned: Vec<String>,
}

impl Args<'_> {
    /// The ticket id in `w`.
    pub fn ticket(&self, w: Option<&&str>) -> Result<TicketId, CommandError> {
        let w = w.ok_or_else(|| err(self.verb, Problem::MissingTicket))?;
        TicketId::parse(w).ok_or_else(|| err(self.verb, Problem::BadTicket(w.to_string())))
    }

    /// Nothing after the first `from` words.
    pub fn no_more(&self, from: usize) -> Result<(), CommandError> {
        match self.rest.get(from) {
            Some(w) => Err(err(self.verb, Problem::Unexpected(w.to_string()))),
            None => Ok(()),
        }
    }

    /// `ROLE @user [APPLICATION]` and nothing after.
    pub fn member(&self) -> Result<(String, Actor, Option<String>), CommandError> {
        let verb = self.verb;
        let role = self
            .rest
            .first()
            .ok_or_else(|| err(verb, Problem::MissingRole))?
            .to_ascii_lowercase();
        let user = self.rest.get(1).ok_or_else(|| err(verb, Problem::MissingUser))?;
        let user = parse_mention(user).map_err(|p| err(verb, p))?;
        let app = self.rest.get(2).map(|s| s.to_string());
        self.no_more(3)?;
        Ok((role, user, app))
    }

    /// `APPLICATION [ENVIRONMENT]` and nothing after.
    pub fn app_and_env(&self) -> Result<(String, Option<String>), CommandError> {
        let application = self
            .rest
            .first()
            .ok_or_else(|| err(self.verb, Problem::MissingApplication))?
            .to_string();
        self.no_more(2)?;
        Ok((application, self.rest.get(1).map(|s| s.to_string())))
    }
}

#[cfg(test)]
mod tests;
