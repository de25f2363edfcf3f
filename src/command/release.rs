//! `/release …`: tickets and their releases.

use super::*;

pub(super) fn new_ticket(a: &Args) -> Result<Command, CommandError> {
    let owned = &a.owned;
    let (plain, values) = split_values(owned);
    Ok(Command::ReleaseNew {
        service: (!plain.is_empty()).then(|| plain.join(" ")),
        values,
    })
}

pub(super) fn approve_or_resubmit(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest, owned) = (a.verb, &a.rest, &a.owned);
    let id = a.ticket(rest.first())?;
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

pub(super) fn reject(a: &Args) -> Result<Command, CommandError> {
    let rest = &a.rest;
    let id = a.ticket(rest.first())?;
    let reason = (rest.len() > 1).then(|| rest[1..].join(" "));
    Ok(Command::ReleaseReject { id, reason })
}

pub(super) fn show(a: &Args) -> Result<Command, CommandError> {
    let rest = &a.rest;
    let id = a.ticket(rest.first())?;
    a.no_more(1)?;
    Ok(Command::ReleaseShow { id })
}

pub(super) fn list(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let scope = match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("pending") => ListScope::Pending,
        Some("mine") => ListScope::Mine,
        Some("all") => ListScope::All,
        Some(_) => return Err(err(verb, Problem::BadScope(rest[0].to_string()))),
    };
    a.no_more(1)?;
    Ok(Command::ReleaseList { scope })
}

pub(super) fn cancel(a: &Args) -> Result<Command, CommandError> {
    let rest = &a.rest;
    let id = a.ticket(rest.first())?;
    let reason = (rest.len() > 1).then(|| rest[1..].join(" "));
    Ok(Command::ReleaseCancel { id, reason })
}

pub(super) fn plan(a: &Args) -> Result<Command, CommandError> {
    let rest = &a.rest;
    let id = a.ticket(rest.first())?;
    a.no_more(1)?;
    Ok(Command::ReleasePlan { id })
}

pub(super) fn status(a: &Args) -> Result<Command, CommandError> {
    let rest = &a.rest;
    let id = a.ticket(rest.first())?;
    a.no_more(1)?;
    Ok(Command::ReleaseStatus { id })
}

pub(super) fn rollback(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let id = a.ticket(rest.first())?;
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
    a.no_more(if to.is_some() { 3 } else { 1 })?;
    Ok(Command::ReleaseRollback { id, to })
}

pub(super) fn baselines(a: &Args) -> Result<Command, CommandError> {
    let (application, environment) = a.app_and_env()?;
    Ok(Command::ReleaseBaselines {
        application,
        environment,
    })
}

/// The most replicas `/release scale` sets (a typo's extra zero is refused, not run).
pub const MAX_REPLICAS: i32 = 1000;

pub(super) fn scale(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let application = rest
        .first()
        .ok_or_else(|| err(verb, Problem::MissingApplication))?
        .to_string();
    let (environment, count) = match rest.len() {
        1 => return Err(err(verb, Problem::BadReplicas(String::new()))),
        2 => (None, rest[1]),
        3 => (Some(rest[1].to_string()), rest[2]),
        _ => return Err(err(verb, Problem::Unexpected(rest[3].to_string()))),
    };
    let replicas = count
        .parse::<i32>()
        .ok()
        .filter(|n| (0..=MAX_REPLICAS).contains(n))
        .ok_or_else(|| err(verb, Problem::BadReplicas(count.to_string())))?;
    Ok(Command::ReleaseScale {
        application,
        environment,
        replicas,
    })
}

pub(super) fn restart(a: &Args) -> Result<Command, CommandError> {
    let (application, environment) = a.app_and_env()?;
    Ok(Command::ReleaseRestart {
        application,
        environment,
    })
}

pub(super) fn help(a: &Args) -> Result<Command, CommandError> {
    Ok(Command::Help {
        command: a.command.clone(),
    })
}

pub(super) fn override_freeze(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let id = a.ticket(rest.first())?;
    if rest.len() < 2 {
        return Err(err(verb, Problem::MissingReason));
    }
    Ok(Command::ReleaseOverride {
        id,
        reason: rest[1..].join(" "),
    })
}
