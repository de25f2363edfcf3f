//! `/role …`: members of roles, and linked identities.

use super::*;

pub(super) fn link(a: &Args) -> Result<Command, CommandError> {
    let (verb, rest) = (a.verb, &a.rest);
    let user = rest.first().ok_or_else(|| err(verb, Problem::MissingUser))?;
    let user = parse_mention(user).map_err(|p| err(verb, p))?;
    let other = rest.get(1).ok_or_else(|| err(verb, Problem::MissingUser))?;
    let other = parse_mention(other).map_err(|p| err(verb, p))?;
    a.no_more(2)?;
    Ok(Command::RoleLink { user, other })
}

pub(super) fn add(a: &Args) -> Result<Command, CommandError> {
    let (role, user, application) = a.member()?;
    Ok(Command::RoleAdd {
        role,
        user,
        application,
    })
}

pub(super) fn remove(a: &Args) -> Result<Command, CommandError> {
    let (role, user, application) = a.member()?;
    Ok(Command::RoleRemove {
        role,
        user,
        application,
    })
}

pub(super) fn list(a: &Args) -> Result<Command, CommandError> {
    a.no_more(0)?;
    Ok(Command::RoleList)
}
