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

#[test]
fn scale_restart_and_a_lanes_deploy_take_an_environment_when_given_and_refuse_bad_counts() {
    assert_eq!(
        parse("release", "scale payments 5"),
        Ok(Command::ReleaseScale {
            application: "payments".into(),
            environment: None,
            replicas: 5
        })
    );
    assert_eq!(
        parse("release", "scale payments staging 0"),
        Ok(Command::ReleaseScale {
            application: "payments".into(),
            environment: Some("staging".into()),
            replicas: 0
        })
    );
    for (line, word) in [
        ("scale payments", ""),
        ("scale payments -1", "-1"),
        ("scale payments prod 1001", "1001"),
        ("scale payments prod five", "five"),
    ] {
        assert_eq!(
            parse("release", line).map_err(|e| e.problem),
            Err(Problem::BadReplicas(word.into())),
            "{line}"
        );
    }
    assert_eq!(
        parse("release", "restart payments prod"),
        Ok(Command::ReleaseRestart {
            application: "payments".into(),
            environment: Some("prod".into())
        })
    );
    assert_eq!(
        parse("swimlane", "deploy login-v2 payments 2.3.0"),
        Ok(Command::SwimlaneDeploy {
            name: "login-v2".into(),
            app: "payments".into(),
            version: "2.3.0".into()
        })
    );
    assert_eq!(
        parse("swimlane", "deploy login-v2 payments").map_err(|e| e.problem),
        Err(Problem::MissingVersion)
    );
}
