//! Many executions' moves in one statement (SQLite's group commit): their saves, and the
//! ending of those that are over.

use super::*;

/// Several runner saves in one statement; for each, whether it was written (as [`save`]).
pub async fn save_many(conn: &mut Conn, owner: &str, saves: &[Save<'_>]) -> anyhow::Result<Vec<bool>> {
    let mut out = Vec::with_capacity(saves.len());
    for chunk in saves.chunks(SAVES_PER_STATEMENT) {
        let statement = save_many_statement(super::super::Marks::new(conn), owner, chunk)?;
        let rows = statement.query().fetch_all(&mut *conn).await?;
        out.extend(saved(chunk, &rows)?);
    }
    Ok(out)
}

/// Most saves one statement of [`save_many`] writes.
pub const SAVES_PER_STATEMENT: usize = 256;

/// The statement of [`save_many`] for up to [`SAVES_PER_STATEMENT`] saves; it returns the
/// ids of those written.
pub(crate) fn save_many_statement(
    mut marks: super::super::Marks,
    owner: &str,
    chunk: &[Save<'_>],
) -> anyhow::Result<super::super::Statement> {
    use super::super::Arg;
    if let Some(other) = chunk
        .iter()
        .find(|s| !matches!(s.lease, Lease::Hold(_) | Lease::Release))
    {
        anyhow::bail!("save_many: execution {} does not hold or release its lease", other.id);
    }
    let values: Vec<String> = chunk.iter().map(|_| format!("({})", marks.list(9))).collect();
    let owner_mark = marks.next();
    let sql = format!(
        "WITH v (x_id, x_version, x_status, x_state, x_next_wake, x_finished_at, x_now, x_due_at, x_release) AS (VALUES {})
         UPDATE executions SET status = v.x_status, state = v.x_state, next_wake = v.x_next_wake,
                finished_at = v.x_finished_at, updated_at = v.x_now, version = executions.version + 1,
                due_at = v.x_due_at,
                lease_owner = CASE WHEN v.x_release = 1 THEN NULL ELSE executions.lease_owner END
         FROM v
         WHERE executions.id = v.x_id AND executions.version = v.x_version AND executions.lease_owner = {owner_mark}
         RETURNING executions.id AS id",
        values.join(", ")
    );
    let mut args = Vec::with_capacity(chunk.len() * 9 + 1);
    for s in chunk {
        let (due_at, release) = match s.lease {
            Lease::Hold(t) => (t, 0i64),
            _ => (s.next_wake, 1),
        };
        args.extend([
            Arg::Int(s.id),
            Arg::Int(s.version),
            Arg::Text(s.status.to_string()),
            Arg::Text(s.state.to_string()),
            Arg::Int(s.next_wake),
            Arg::MaybeInt(s.finished_at),
            Arg::Int(s.now),
            Arg::Int(due_at),
            Arg::Int(release),
        ]);
    }
    args.push(Arg::Text(owner.to_string()));
    Ok(super::super::Statement { sql, args })
}

/// What an execution's end writes beside its move when the move is written with others
/// (SQLite's group commit): the baseline it leaves, the event the ticket moves on with,
/// and its release lock given up. Each statement writes only if the move's version still
/// holds (they run before the move's save). The first one is a fence: when a release of
/// the same target waits, it changes the execution's version instead, so that nothing of
/// the move is written and the ending is committed with the lock passed on
/// (`executor::start::pass_lock`), which this way of writing does not do.
pub(crate) fn ending_statements(
    backend: super::super::Backend,
    guard: (i64, i64, &str),
    target: (&str, &str),
    left: &crate::domain::execution::Left,
    event: &super::super::inbox::NewEvent,
    now: i64,
) -> Vec<super::super::Statement> {
    use super::super::Arg;
    let (id, version, owner) = guard;
    // `sql` with the guard's placeholders after its own, and their values after `args`.
    let guarded = |sql: &dyn Fn(&mut super::super::Marks) -> String, args: Vec<Arg>| {
        let mut marks = super::super::Marks::for_backend(backend);
        let head = sql(&mut marks);
        let (i, v, o) = (marks.next(), marks.next(), marks.next());
        let mut args = args;
        args.extend([Arg::Int(id), Arg::Int(version), Arg::Text(owner.to_string())]);
        super::super::Statement {
            sql: head.replace(
                "{guard}",
                &format!(
                    "EXISTS (SELECT 1 FROM executions g WHERE g.id = {i} AND g.version = {v} AND g.lease_owner = {o})"
                ),
            ),
            args,
        }
    };
    let app = || Arg::Text(target.0.to_string());
    let env = || Arg::Text(target.1.to_string());
    vec![
        guarded(
            &|m| {
                format!(
                    "UPDATE executions SET version = version + 1
                     WHERE EXISTS (SELECT 1 FROM executions w WHERE w.application = {} AND w.environment = {}
                                   AND w.finished_at IS NULL AND w.status = 'QUEUED' AND w.id <> {})
                       AND executions.id = {} AND {{guard}}",
                    m.next(),
                    m.next(),
                    m.next(),
                    m.next()
                )
            },
            vec![app(), env(), Arg::Int(id), Arg::Int(id)],
        ),
        guarded(
            &|m| {
                format!(
                    "INSERT INTO baselines (application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated)
                     SELECT {app}, {env}, {id}, {kind}, COALESCE({version}, b.version, '{unknown}'), COALESCE({replicas}, b.replicas, 0),
                            COALESCE(b.config_version, '-'), {at}, {simulated}
                     FROM (SELECT 1) LEFT JOIN (SELECT version, replicas, config_version FROM baselines
                                                WHERE application = {app_of} AND environment = {env_of}
                                                  AND execution_id = {before_of} AND kind = 'before' ORDER BY id LIMIT 1) b ON true
                     WHERE {{guard}}",
                    app = m.next(),
                    env = m.next(),
                    id = m.next(),
                    kind = m.next(),
                    version = m.next(),
                    replicas = m.next(),
                    at = m.next(),
                    simulated = m.next(),
                    app_of = m.next(),
                    env_of = m.next(),
                    before_of = m.next(),
                    unknown = crate::domain::execution::UNKNOWN,
                )
            },
            vec![
                app(),
                env(),
                Arg::Int(id),
                Arg::Text(left.kind.to_string()),
                Arg::MaybeText(left.version.clone()),
                Arg::MaybeInt(left.replicas),
                Arg::Int(now),
                Arg::Int(i64::from(left.simulated)),
                app(),
                env(),
                Arg::Int(id),
            ],
        ),
        guarded(
            &|m| {
                format!(
                    "INSERT INTO inbox (platform, dedupe_key, order_key, payload, status, received_at, due_at)
                     SELECT {}, 'pending', {}, {} WHERE {{guard}}
                     ON CONFLICT (dedupe_key) DO NOTHING",
                    m.list(4),
                    m.next(),
                    m.next()
                )
            },
            vec![
                Arg::Text(event.platform.clone()),
                Arg::Text(event.dedupe_key.clone()),
                Arg::Text(event.order_key.clone()),
                Arg::Text(event.payload.clone()),
                Arg::Int(now),
                Arg::Int(now),
            ],
        ),
        guarded(
            &|m| {
                format!(
                    "DELETE FROM release_locks WHERE application = {} AND environment = {} AND execution_id = {} AND {{guard}}",
                    m.next(),
                    m.next(),
                    m.next()
                )
            },
            vec![app(), env(), Arg::Int(id)],
        ),
    ]
}

/// For each save of a chunk, whether [`save_many_statement`] returned its id.
pub(crate) fn saved(chunk: &[Save<'_>], rows: &[sqlx::any::AnyRow]) -> anyhow::Result<Vec<bool>> {
    let ids: std::collections::HashSet<i64> = rows.iter().map(|r| get_i64(r, "id")).collect::<Result<_, _>>()?;
    Ok(chunk.iter().map(|s| ids.contains(&s.id)).collect())
}
