//! Baselines: what an application runs in an environment, recorded when an execution
//! starts and ends.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub id: i64,
    pub application: String,
    pub environment: String,
    pub execution: Option<i64>,
    /// `before` or `after` the release.
    pub kind: String,
    pub version: String,
    pub replicas: i64,
    pub config_version: String,
    pub recorded_at: i64,
    /// Recorded from the simulated fleet, not from a real system.
    pub simulated: bool,
    /// What ran on Kubernetes, when the release ran there.
    pub workload: Workload,
}

/// What a Kubernetes workload ran at a baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The image as the pod template named it (`registry/app:2.0.0`).
    pub image: Option<String>,
    /// The digest its pods ran (`registry/app@sha256:…`): what a rollback to it deploys.
    pub digest: Option<String>,
    /// The ConfigMaps and Secrets the pod template referred to (`configmap/NAME`).
    pub config_refs: Vec<String>,
}

impl Workload {
    /// The image a redeploy of this baseline sets: by digest when known.
    pub fn deployable(&self) -> Option<&str> {
        self.digest.as_deref().or(self.image.as_deref())
    }
}

pub async fn record_baseline(conn: &mut Conn, b: &Baseline) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO baselines (application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated, image, digest, config_refs)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&b.application)
    .bind(&b.environment)
    .bind(b.execution)
    .bind(&b.kind)
    .bind(&b.version)
    .bind(b.replicas)
    .bind(&b.config_version)
    .bind(b.recorded_at)
    .bind(i64::from(b.simulated))
    .bind(&b.workload.image)
    .bind(&b.workload.digest)
    .bind(refs_json(&b.workload))
    .fetch_one(&mut *conn)
    .await?;
    Ok(get_i64(&row, "id")?)
}

fn refs_json(w: &Workload) -> Option<String> {
    (!w.config_refs.is_empty()).then(|| serde_json::to_string(&w.config_refs).unwrap_or_default())
}

/// Fills in what ran on Kubernetes at a baseline recorded before it was known (the
/// `before` record of a release is written when it starts, before its DEPLOY looked),
/// and its replicas if none were known.
pub async fn fill_workload(conn: &mut Conn, id: i64, w: &Workload, replicas: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE baselines SET image = $1, digest = $2, config_refs = $3,
                replicas = CASE WHEN replicas = 0 THEN $4 ELSE replicas END
         WHERE id = $5 AND image IS NULL",
    )
    .bind(&w.image)
    .bind(&w.digest)
    .bind(refs_json(w))
    .bind(replicas)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) const BASELINE_COLUMNS: &str =
    "id, application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated, image, digest, config_refs";

pub(super) fn baseline_from_row(r: &AnyRow) -> anyhow::Result<Baseline> {
    Ok(Baseline {
        id: get_i64(r, "id")?,
        application: r.try_get("application")?,
        environment: r.try_get("environment")?,
        execution: r.try_get("execution_id")?,
        kind: r.try_get("kind")?,
        version: r.try_get("version")?,
        replicas: get_i64(r, "replicas")?,
        config_version: r.try_get("config_version")?,
        recorded_at: get_i64(r, "recorded_at")?,
        simulated: get_i64(r, "simulated")? != 0,
        workload: Workload {
            image: r.try_get("image")?,
            digest: r.try_get("digest")?,
            config_refs: r
                .try_get::<Option<String>, _>("config_refs")?
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
        },
    })
}

pub async fn baseline(conn: &mut Conn, id: i64) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!("SELECT {BASELINE_COLUMNS} FROM baselines WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The state an execution (of `application` in `environment`: the index's way to its
/// baselines) started from: what a rollback returns to by default.
pub async fn baseline_before(
    conn: &mut Conn,
    execution: i64,
    application: &str,
    environment: &str,
) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!(
        "SELECT {BASELINE_COLUMNS} FROM baselines
         WHERE application = $1 AND environment = $2 AND execution_id = $3 AND kind = 'before' ORDER BY id LIMIT 1"
    ))
    .bind(application)
    .bind(environment)
    .bind(execution)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The last completed state of an application in an environment: what the newest
/// finished release (or rollback) left.
pub async fn last_completed(conn: &mut Conn, application: &str, environment: &str) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!(
        "SELECT {BASELINE_COLUMNS} FROM baselines WHERE application = $1 AND environment = $2 AND kind IN ('after', 'rollback')
         ORDER BY id DESC LIMIT 1"
    ))
    .bind(application)
    .bind(environment)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The baselines of an application in an environment, newest first, with the ticket of
/// the release that recorded each.
pub async fn list_baselines(
    conn: &mut Conn,
    application: &str,
    environment: &str,
    limit: i64,
) -> anyhow::Result<Vec<(Baseline, Option<TicketId>)>> {
    let rows = sqlx::query(
        "SELECT b.id, b.application, b.environment, b.execution_id, b.kind, b.version, b.replicas, b.config_version, b.recorded_at, b.simulated, b.image, b.digest, b.config_refs, e.ticket_id
         FROM baselines b LEFT JOIN executions e ON e.id = b.execution_id
         WHERE b.application = $1 AND b.environment = $2 ORDER BY b.id DESC LIMIT $3",
    )
    .bind(application)
    .bind(environment)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                baseline_from_row(r)?,
                r.try_get::<Option<i64>, _>("ticket_id")?.map(TicketId),
            ))
        })
        .collect()
}
