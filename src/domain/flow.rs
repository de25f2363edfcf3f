//! Flows: reusable definitions of the stages a ticket walks through.

use serde::{Deserialize, Serialize};

/// What a stage's form asks for, and how the answer is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// One line of free text.
    Text,
    /// Several lines of free text.
    Multiline,
    /// 32 hexadecimal characters.
    Md5,
    /// An http(s) URL.
    Url,
    /// A date and time in the future (`YYYY-MM-DD HH:MM`, UTC unless an offset is given).
    DateTime,
    /// One of `options`.
    Select,
    /// A registered application (any name when none are registered).
    Application,
    /// One of the environments of the registered applications (`prod` by default).
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub id: String,
    pub label: String,
    pub kind: FieldKind,
    /// The choices of a `select` field.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub hint: Option<String>,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// Where a rejection sends the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectTarget {
    /// Back to the submitter, who may edit and resubmit or withdraw.
    Submitter,
    /// Back to a named earlier stage.
    Stage(String),
    /// The ticket ends as rejected.
    End,
}

/// Where a stage is posted: one channel id (for a team on one platform), or one per
/// platform (`{ slack = "C0OPS", discord = "900…", dingtalk = "cid…" }`): a ticket's
/// stages go to its submitter's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StageChannel {
    All(String),
    PerPlatform(std::collections::BTreeMap<String, String>),
}

impl StageChannel {
    /// The channel on `platform`, if one is configured.
    pub fn on(&self, platform: &str) -> Option<&str> {
        match self {
            StageChannel::All(c) => Some(c.as_str()),
            StageChannel::PerPlatform(m) => m.get(platform).map(String::as_str),
        }
        .filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub id: String,
    pub name: String,
    pub role: String,
    /// Channel to post this stage in; the ticket's own channel when absent.
    #[serde(default)]
    pub channel: Option<StageChannel>,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    /// Countersign: how many distinct holders of the role must approve.
    #[serde(default = "one")]
    pub approvals_required: u32,
    #[serde(default = "default_reject")]
    pub on_reject: RejectTarget,
    #[serde(default)]
    pub starts_execution: bool,
    /// Waiting longer than this, the role's members are reminded (once per period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<crate::domain::schedule::Span>,
    /// After `escalate_after` reminders this role may decide the stage too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<String>,
    #[serde(default = "default_escalate_after")]
    pub escalate_after: u32,
}

fn default_escalate_after() -> u32 {
    2
}

fn default_reject() -> RejectTarget {
    RejectTarget::Submitter
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub id: String,
    pub name: String,
    /// The submitter may not approve any stage of their own ticket.
    #[serde(default)]
    pub separation_of_duties: bool,
    /// `stages[0]` is the submission form; the others are approval stages.
    pub stages: Vec<Stage>,
}

impl Flow {
    pub fn stage(&self, idx: usize) -> Option<&Stage> {
        self.stages.get(idx)
    }

    pub fn stage_index(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }

    pub fn submission(&self) -> Option<&Stage> {
        self.stages.first()
    }

    /// Index of the stage a rejection at `from` sends the ticket to; `0` means the submitter.
    pub fn reject_destination(&self, from: usize) -> Option<usize> {
        match &self.stage(from)?.on_reject {
            RejectTarget::Submitter => Some(0),
            RejectTarget::Stage(id) => self.stage_index(id),
            RejectTarget::End => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn stage(id: &str, role: &str) -> Stage {
        Stage {
            id: id.into(),
            name: id.into(),
            role: role.into(),
            channel: None,
            fields: vec![],
            approvals_required: 1,
            on_reject: RejectTarget::Submitter,
            starts_execution: false,
            sla: None,
            escalate_to: None,
            escalate_after: 2,
        }
    }

    /// submit(product) → test → ops → qc
    pub fn flow() -> Flow {
        Flow {
            id: "f".into(),
            name: "F".into(),
            separation_of_duties: false,
            stages: vec![
                stage("submit", "product"),
                stage("test", "test"),
                stage("ops", "ops"),
                stage("qc", "qc"),
            ],
        }
    }
}
