//! Swimlanes: isolated, expiring environments for one feature (seed 003's 泳道). Pure:
//! the name rules, the lifecycle and its clock, and the facts derived from a lane's name.
//!
//! Lifecycle: `provisioning → active → pending_deletion → deleting → deleted`, and
//! `failed` (with the reason) when provisioning gives up. An active lane idle for its idle
//! period becomes `pending_deletion` (its owner is asked to renew it); unrenewed, it is
//! deleted at the deadline, `grace` later.

use super::Actor;
use serde::{Deserialize, Serialize};

/// Kubernetes' limit on a namespace name (an RFC 1123 label).
pub const MAX_NAME: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneStatus {
    Provisioning,
    Active,
    PendingDeletion,
    Deleting,
    Deleted,
    Failed,
}

impl LaneStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LaneStatus::Provisioning => "provisioning",
            LaneStatus::Active => "active",
            LaneStatus::PendingDeletion => "pending_deletion",
            LaneStatus::Deleting => "deleting",
            LaneStatus::Deleted => "deleted",
            LaneStatus::Failed => "failed",
        }
    }

    /// Whether the lane still holds its name (everything but `deleted`).
    pub fn live(self) -> bool {
        self != LaneStatus::Deleted
    }
}

/// Why a name cannot become a lane's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Nothing of it is a letter or a digit a namespace may hold.
    Empty,
}

/// The name as a Kubernetes namespace: lowercase letters, digits and `-`, at most 63
/// characters, starting and ending with a letter or digit. Everything else becomes `-`
/// (runs of them one), uppercase becomes lowercase.
pub fn sanitize(name: &str) -> Result<String, NameProblem> {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    out.truncate(MAX_NAME);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        Err(NameProblem::Empty)
    } else {
        Ok(out)
    }
}

/// What a lane is for: a ticket, or a title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Ticket(i64),
    Title(String),
}

/// Who deleted a lane, or that it expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    Expired,
    Person(Actor),
}

/// The lifecycle policy (`[swimlanes]`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Idle this long, a lane is pending deletion.
    pub idle_ms: i64,
    /// Pending deletion this long, it is deleted.
    pub grace_ms: i64,
    /// No lane lives longer than this from its creation (unless an admin extends it).
    pub max_lifetime_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub status: LaneStatus,
    pub owner: Actor,
    pub owner_name: String,
    /// Where its messages go (its platform's channel).
    pub platform: String,
    pub channel: String,
    pub apps: Vec<String>,
    pub purpose: Option<Purpose>,
    /// This lane's idle period (`--days`, a renewal's days, or the policy's).
    pub idle_ms: i64,
    pub created_at: i64,
    pub last_activity: i64,
    /// When it is deleted (pending deletion).
    pub deadline: Option<i64>,
    /// Its maximum lifetime ends here (an admin may move it).
    pub hard_end: Option<i64>,
    /// How many times it was announced as pending deletion (names each prompt message).
    pub round: u32,
    /// Hook attempts of the phase under way (provisioning, deleting).
    pub attempts: u32,
    /// Why the last hook attempt failed, or why the lane failed.
    pub reason: Option<String>,
    pub deleted_at: Option<i64>,
    pub deleted_by: Option<DeletedBy>,
    #[serde(skip)]
    pub version: i64,
}

/// What a renewal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Kept; the next prompt comes at `until`.
    Kept { until: i64, was_pending: bool },
    /// Kept, but only up to the end of its maximum lifetime.
    Capped { until: i64, was_pending: bool },
}

/// Why a lane cannot be renewed or deleted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneRefusal {
    /// Not active or pending deletion (being created, deleted, or gone).
    NotLive(LaneStatus),
    /// Its maximum lifetime is over: only an admin can extend it.
    AtMaxLifetime { end: i64 },
}

/// What a person asks for when creating a lane.
#[derive(Debug, Clone)]
pub struct NewLane {
    pub name: String,
    pub owner: Actor,
    pub owner_name: String,
    /// Where the owner is told of it.
    pub platform: String,
    pub channel: String,
    pub apps: Vec<String>,
    pub purpose: Option<Purpose>,
}

impl Lane {
    /// A lane being provisioned, kept `idle_ms` from its last activity.
    pub fn new(new: NewLane, idle_ms: i64, policy: &Policy, now: i64) -> Self {
        let NewLane {
            name,
            owner,
            owner_name,
            platform,
            channel,
            apps,
            purpose,
        } = new;
        Self {
            id: 0,
            name,
            status: LaneStatus::Provisioning,
            owner,
            owner_name,
            platform,
            channel,
            apps,
            purpose,
            idle_ms,
            created_at: now,
            last_activity: now,
            deadline: None,
            hard_end: policy.max_lifetime_ms.map(|m| now.saturating_add(m)),
            round: 0,
            attempts: 0,
            reason: None,
            deleted_at: None,
            deleted_by: None,
            version: 0,
        }
    }

    /// When an active lane is next announced as pending deletion: after its idle period,
    /// or `grace` before the end of its maximum lifetime, whichever comes first.
    pub fn prompt_at(&self, policy: &Policy) -> i64 {
        let idle = self.last_activity.saturating_add(self.idle_ms);
        match self.hard_end {
            Some(end) => idle.min(end.saturating_sub(policy.grace_ms)).max(self.last_activity),
            None => idle,
        }
    }

    /// When the lane is deleted unless something happens, as of `now` (an announcement
    /// that is overdue — the daemon was down — comes now, and the deletion a grace later).
    pub fn expires_at(&self, policy: &Policy, now: i64) -> Option<i64> {
        match self.status {
            LaneStatus::Active => Some(self.prompt_at(policy).max(now).saturating_add(policy.grace_ms)),
            LaneStatus::PendingDeletion => self.deadline,
            _ => None,
        }
    }

    /// Activity (a command, a deploy): the idle clock starts over. A lane pending deletion
    /// is kept only by a renewal or a reported deploy (`keep`).
    pub fn touch(&mut self, now: i64, keep: bool) -> bool {
        match self.status {
            LaneStatus::Active => {
                self.last_activity = now;
                true
            }
            LaneStatus::PendingDeletion if keep => {
                self.last_activity = now;
                self.status = LaneStatus::Active;
                self.deadline = None;
                true
            }
            _ => false,
        }
    }

    /// Idle long enough: pending deletion, deleted at `now + grace`.
    pub fn announce(&mut self, now: i64, policy: &Policy) {
        self.status = LaneStatus::PendingDeletion;
        self.deadline = Some(now.saturating_add(policy.grace_ms));
        self.round += 1;
    }

    /// Kept for `for_ms` more (its idle period from now on), within its maximum lifetime;
    /// an admin moves the end of the lifetime instead of being capped by it.
    pub fn renew(
        &mut self,
        now: i64,
        for_ms: Option<i64>,
        policy: &Policy,
        admin: bool,
    ) -> Result<Renewal, LaneRefusal> {
        if !matches!(self.status, LaneStatus::Active | LaneStatus::PendingDeletion) {
            return Err(LaneRefusal::NotLive(self.status));
        }
        let idle = for_ms.unwrap_or(self.idle_ms);
        let wanted = now.saturating_add(idle);
        if let Some(end) = self.hard_end {
            let last_prompt = end.saturating_sub(policy.grace_ms);
            if admin && wanted > last_prompt {
                self.hard_end = Some(wanted.saturating_add(policy.grace_ms));
            } else if last_prompt <= now {
                return Err(LaneRefusal::AtMaxLifetime { end });
            }
        }
        let was_pending = self.status == LaneStatus::PendingDeletion;
        self.status = LaneStatus::Active;
        self.deadline = None;
        self.last_activity = now;
        self.idle_ms = idle;
        let until = self.prompt_at(policy);
        Ok(if until < wanted {
            Renewal::Capped { until, was_pending }
        } else {
            Renewal::Kept { until, was_pending }
        })
    }

    /// Deletion starts (a person asked, or the deadline passed).
    pub fn start_deletion(&mut self, by: DeletedBy) -> Result<(), LaneRefusal> {
        match self.status {
            LaneStatus::Active | LaneStatus::PendingDeletion | LaneStatus::Failed => {
                self.status = LaneStatus::Deleting;
                self.deadline = None;
                self.attempts = 0;
                self.deleted_by = Some(by);
                Ok(())
            }
            s => Err(LaneRefusal::NotLive(s)),
        }
    }
}

/// Where a lane's hooks stand after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookNext {
    /// Try again at this time.
    RetryAt(i64),
    /// Give up (provisioning only): the lane failed.
    GiveUp,
}

/// After a failed hook attempt: provisioning is retried `retries` times, then fails;
/// deletion is never given up (a lane is never forgotten), its retries spaced out
/// exponentially from `backoff_ms` up to an hour.
pub fn after_failure(deleting: bool, attempts: u32, retries: u32, backoff_ms: i64, now: i64) -> HookNext {
    if !deleting && attempts > retries {
        return HookNext::GiveUp;
    }
    let exp = attempts.saturating_sub(1).min(16);
    let delay = backoff_ms.saturating_mul(1i64 << exp).min(3_600_000);
    HookNext::RetryAt(now.saturating_add(delay.max(1)))
}

/// Facts derived from a lane's name by the configured patterns (`{lane}`, `{app}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Derived {
    pub namespace: String,
    pub branch: String,
    /// `(app, domain)` per application.
    pub internal: Vec<(String, String)>,
    pub external: Vec<(String, String)>,
}

/// The naming patterns (`[swimlanes]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns {
    pub namespace: String,
    pub branch: String,
    pub internal_domain: String,
    pub external_domain: Option<String>,
}

fn fill(pattern: &str, lane: &str, app: &str) -> String {
    pattern.replace("{lane}", lane).replace("{app}", app)
}

pub fn derive(lane: &Lane, p: &Patterns) -> Derived {
    let per_app = |pattern: &str| -> Vec<(String, String)> {
        lane.apps
            .iter()
            .map(|a| (a.clone(), fill(pattern, &lane.name, a)))
            .collect()
    };
    Derived {
        namespace: fill(&p.namespace, &lane.name, ""),
        branch: fill(&p.branch, &lane.name, ""),
        internal: per_app(&p.internal_domain),
        external: p.external_domain.as_deref().map(per_app).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn policy(max: Option<i64>) -> Policy {
        Policy {
            idle_ms: 6 * DAY,
            grace_ms: DAY,
            max_lifetime_ms: max,
        }
    }

    fn lane(p: &Policy) -> Lane {
        let new = NewLane {
            name: "login".into(),
            owner: Actor::new("slack", "U1"),
            owner_name: "alice".into(),
            platform: "slack".into(),
            channel: "C1".into(),
            apps: vec!["web".into()],
            purpose: None,
        };
        let mut l = Lane::new(new, p.idle_ms, p, 0);
        l.status = LaneStatus::Active;
        l
    }

    #[test]
    fn names_follow_the_namespace_rules() {
        assert_eq!(sanitize("Feature/Login_V2").unwrap(), "feature-login-v2");
        assert_eq!(sanitize("--a..b--").unwrap(), "a-b");
        assert_eq!(sanitize("支付 pay").unwrap(), "pay");
        assert_eq!(sanitize("登录"), Err(NameProblem::Empty));
        let long = "x".repeat(62) + "-yz";
        let s = sanitize(&long).unwrap();
        assert!(s.len() <= MAX_NAME && !s.ends_with('-'), "{s}");
        assert_eq!(sanitize("ok-name").unwrap(), "ok-name");
    }

    #[test]
    fn an_idle_lane_is_announced_then_deleted_unless_renewed() {
        let p = policy(None);
        let mut l = lane(&p);
        assert_eq!(l.prompt_at(&p), 6 * DAY);
        assert_eq!(l.expires_at(&p, 0), Some(7 * DAY));
        assert_eq!(
            l.expires_at(&p, 9 * DAY),
            Some(10 * DAY),
            "an overdue announcement comes now"
        );
        l.touch(DAY, false);
        assert_eq!(l.prompt_at(&p), 7 * DAY, "activity starts the idle clock over");
        l.announce(7 * DAY, &p);
        assert_eq!(
            (l.status, l.deadline, l.round),
            (LaneStatus::PendingDeletion, Some(8 * DAY), 1)
        );
        assert!(!l.touch(7 * DAY + 5, false), "looking at it does not keep it");
        assert_eq!(
            l.renew(7 * DAY + 10, Some(2 * DAY), &p, false),
            Ok(Renewal::Kept {
                until: 9 * DAY + 10,
                was_pending: true
            })
        );
        assert_eq!(l.status, LaneStatus::Active);
        l.start_deletion(DeletedBy::Expired).unwrap();
        assert_eq!(
            l.renew(9 * DAY, None, &p, false),
            Err(LaneRefusal::NotLive(LaneStatus::Deleting))
        );
    }

    #[test]
    fn the_maximum_lifetime_caps_renewals_but_not_an_admins() {
        let p = policy(Some(10 * DAY));
        let mut l = lane(&p);
        assert_eq!(l.prompt_at(&p), 6 * DAY);
        assert_eq!(
            l.renew(5 * DAY, Some(6 * DAY), &p, false),
            Ok(Renewal::Capped {
                until: 9 * DAY,
                was_pending: false
            })
        );
        assert_eq!(
            l.renew(9 * DAY, None, &p, false),
            Err(LaneRefusal::AtMaxLifetime { end: 10 * DAY })
        );
        assert!(matches!(
            l.renew(9 * DAY, Some(3 * DAY), &p, true),
            Ok(Renewal::Kept { .. })
        ));
        assert_eq!(l.hard_end, Some(13 * DAY));
    }

    #[test]
    fn deletion_retries_forever_provisioning_gives_up() {
        assert_eq!(after_failure(false, 1, 3, 1000, 0), HookNext::RetryAt(1000));
        assert_eq!(after_failure(false, 3, 3, 1000, 0), HookNext::RetryAt(4000));
        assert_eq!(after_failure(false, 4, 3, 1000, 0), HookNext::GiveUp);
        assert_eq!(after_failure(true, 40, 3, 1000, 0), HookNext::RetryAt(3_600_000));
    }

    #[test]
    fn facts_come_from_the_patterns() {
        let p = policy(None);
        let mut l = lane(&p);
        l.apps = vec!["web".into(), "api".into()];
        let d = derive(
            &l,
            &Patterns {
                namespace: "lane-{lane}".into(),
                branch: "feature/{lane}".into(),
                internal_domain: "{app}.{lane}".into(),
                external_domain: Some("{app}-{lane}.example.com".into()),
            },
        );
        assert_eq!(d.namespace, "lane-login");
        assert_eq!(d.branch, "feature/login");
        assert_eq!(d.internal[1], ("api".to_string(), "api.login".to_string()));
        assert_eq!(d.external[0].1, "web-login.example.com");
    }
}
