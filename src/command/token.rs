//! `/token …`: API tokens for pipelines.

use super::*;

pub(super) fn create(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let name = rest
        .first()
        .ok_or_else(|| err(verb, Problem::MissingTokenName))?
        .to_string();
    if rest.len() < 2 {
        return Err(err(verb, Problem::MissingApplication));
    }
    let applications = rest[1..]
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Command::TokenCreate { name, applications })
}

pub(super) fn revoke(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let name = rest
        .first()
        .ok_or_else(|| err(verb, Problem::MissingTokenName))?
        .to_string();
    a.no_more(1)?;
    Ok(Command::TokenRevoke { name })
}
