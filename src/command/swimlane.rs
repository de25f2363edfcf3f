//! `/swimlane …`: feature environments.

use super::*;

pub(super) fn help(a: &Args) -> Result<Command, CommandError> {
    Ok(Command::Help {
        command: a.command.clone(),
    })
}

pub(super) fn create(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
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

pub(super) fn list(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let all = match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("all") => true,
        Some("mine") => false,
        Some(_) => return Err(err(verb, Problem::BadScope(rest[0].to_string()))),
    };
    a.no_more(1)?;
    Ok(Command::SwimlaneList { all })
}

pub(super) fn show(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
    a.no_more(1)?;
    Ok(Command::SwimlaneShow { name })
}

pub(super) fn renew(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
    let days = match rest.get(1) {
        Some(d) => Some(lane_days(Some(d)).map_err(|p| err(verb, p))?),
        None => None,
    };
    a.no_more(2)?;
    Ok(Command::SwimlaneRenew { name, days })
}

pub(super) fn delete(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
    let confirmed = match rest.get(1) {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("--confirm") || w.eq_ignore_ascii_case("--yes") => true,
        Some(w) => return Err(err(verb, Problem::Unexpected(w.to_string()))),
    };
    a.no_more(2)?;
    Ok(Command::SwimlaneDelete { name, confirmed })
}

pub(super) fn apps(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
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
    a.no_more(3)?;
    Ok(Command::SwimlaneApps { name, add, app })
}

/// Days a lane is kept: a whole number from 1 to 365.
pub(super) fn lane_days(word: Option<&str>) -> Result<u32, Problem> {
    let w = word.ok_or_else(|| Problem::BadDays(String::new()))?;
    match w.trim_end_matches(['d', 'D']).parse::<u32>() {
        Ok(n) if (1..=365).contains(&n) => Ok(n),
        _ => Err(Problem::BadDays(w.to_string())),
    }
}

pub(super) fn deploy(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let name = rest.first().ok_or_else(|| err(verb, Problem::MissingLane))?.to_string();
    let app = rest
        .get(1)
        .ok_or_else(|| err(verb, Problem::MissingApplication))?
        .to_string();
    let version = rest
        .get(2)
        .ok_or_else(|| err(verb, Problem::MissingVersion))?
        .to_string();
    a.no_more(3)?;
    Ok(Command::SwimlaneDeploy { name, app, version })
}
