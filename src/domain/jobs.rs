//! The scheduler's jobs as a type. A firing's `job` column holds [`Job::key`]; the
//! scheduler reads it back with [`Job::parse`] and the bot answers it with an exhaustive
//! `match`, so a job kind without a handler does not compile.

use std::fmt;

/// Every kind of job, one key prefix (or, for cron jobs, one whole key) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A swimlane's next prompt or deadline (`lane:{id}`).
    LaneTimer,
    /// A scheduled release's start (`release:{ticket}`).
    ReleaseStart,
    /// The reminder before a scheduled release (`release-reminder:{ticket}`).
    ReleaseReminder,
    /// A stage's SLA reminder (`sla:{ticket}`).
    SlaReminder,
    /// The daily digest (`[calendar] digest`, a cron schedule).
    Digest,
    /// The daily list of lanes deleted within a day (`[swimlanes] expiring_list`).
    ExpiringList,
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        JobKind::LaneTimer,
        JobKind::ReleaseStart,
        JobKind::ReleaseReminder,
        JobKind::SlaReminder,
        JobKind::Digest,
        JobKind::ExpiringList,
    ];

    /// The key's prefix of a timer kind, or the whole key of a cron job.
    pub fn key(self) -> &'static str {
        match self {
            JobKind::LaneTimer => "lane:",
            JobKind::ReleaseStart => "release:",
            JobKind::ReleaseReminder => "release-reminder:",
            JobKind::SlaReminder => "sla:",
            JobKind::Digest => "cron:calendar.digest",
            JobKind::ExpiringList => "cron:swimlanes.expiring",
        }
    }

    /// A short name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::LaneTimer => "lane_timer",
            JobKind::ReleaseStart => "release_start",
            JobKind::ReleaseReminder => "release_reminder",
            JobKind::SlaReminder => "sla_reminder",
            JobKind::Digest => "digest",
            JobKind::ExpiringList => "expiring_list",
        }
    }

    /// Whether the job is planned from a cron schedule of the configuration.
    pub fn is_cron(self) -> bool {
        matches!(self, JobKind::Digest | JobKind::ExpiringList)
    }
}

/// One job: its kind and, for a timer, what it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    LaneTimer(i64),
    ReleaseStart(i64),
    ReleaseReminder(i64),
    SlaReminder(i64),
    Digest,
    ExpiringList,
}

/// A stored job key that names no job of this version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a job of this version")]
pub struct UnknownJob(pub String);

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Job::LaneTimer(_) => JobKind::LaneTimer,
            Job::ReleaseStart(_) => JobKind::ReleaseStart,
            Job::ReleaseReminder(_) => JobKind::ReleaseReminder,
            Job::SlaReminder(_) => JobKind::SlaReminder,
            Job::Digest => JobKind::Digest,
            Job::ExpiringList => JobKind::ExpiringList,
        }
    }

    /// The key stored in the firing's `job` column.
    pub fn key(&self) -> String {
        match *self {
            Job::LaneTimer(id) | Job::ReleaseStart(id) | Job::ReleaseReminder(id) | Job::SlaReminder(id) => {
                format!("{}{id}", self.kind().key())
            }
            Job::Digest | Job::ExpiringList => self.kind().key().to_string(),
        }
    }

    /// Reads a stored key back.
    pub fn parse(key: &str) -> Result<Job, UnknownJob> {
        let unknown = || UnknownJob(key.to_string());
        for kind in JobKind::ALL {
            let id = || key.strip_prefix(kind.key()).and_then(|id| id.parse::<i64>().ok());
            let job = match kind {
                JobKind::Digest if key == kind.key() => Some(Job::Digest),
                JobKind::ExpiringList if key == kind.key() => Some(Job::ExpiringList),
                JobKind::Digest | JobKind::ExpiringList => None,
                JobKind::LaneTimer => id().map(Job::LaneTimer),
                JobKind::ReleaseStart => id().map(Job::ReleaseStart),
                JobKind::ReleaseReminder => id().map(Job::ReleaseReminder),
                JobKind::SlaReminder => id().map(Job::SlaReminder),
            };
            if let Some(job) = job {
                return Ok(job);
            }
        }
        Err(unknown())
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_kind_has_its_own_key_and_name() {
        for (i, a) in JobKind::ALL.iter().enumerate() {
            for b in &JobKind::ALL[i + 1..] {
                assert!(
                    !a.key().starts_with(b.key()) && !b.key().starts_with(a.key()),
                    "{a:?} and {b:?} share a key prefix"
                );
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn keys_read_back_as_the_job_they_were_written_from() {
        let jobs = [
            Job::LaneTimer(7),
            Job::ReleaseStart(12),
            Job::ReleaseReminder(12),
            Job::SlaReminder(3),
            Job::Digest,
            Job::ExpiringList,
        ];
        for job in jobs {
            assert_eq!(Job::parse(&job.key()), Ok(job));
            assert_eq!(JobKind::ALL.iter().filter(|k| **k == job.kind()).count(), 1);
        }
        // The keys of the versions before this type.
        assert_eq!(Job::parse("release-reminder:12"), Ok(Job::ReleaseReminder(12)));
        assert_eq!(Job::parse("cron:calendar.digest"), Ok(Job::Digest));
        assert_eq!(Job::parse("lane:x"), Err(UnknownJob("lane:x".into())));
        assert_eq!(Job::parse("cron:gone"), Err(UnknownJob("cron:gone".into())));
    }
}
