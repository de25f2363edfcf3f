//! `/freeze …`, `/lock`, `/unlock`, `/release override`: the release calendar.

use super::*;

pub(super) fn freeze_start(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
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

pub(super) fn freeze_end(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
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
    a.no_more(1)?;
    Ok(Command::FreezeEnd { id })
}

pub(super) fn freeze_list(a: &Args) -> Result<Command, CommandError> {
    a.no_more(0)?;
    Ok(Command::FreezeList)
}

pub(super) fn lock(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest, owned) = (a.verb, &a.rest, &a.owned);
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

pub(super) fn unlock(a: &Args) -> Result<Command, CommandError> {
    let (application, environment) = a.app_and_env()?;
    Ok(Command::Unlock {
        application,
        environment,
    })
}
