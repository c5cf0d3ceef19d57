//! The embedded SQLite store (WAL, `synchronous=FULL`).
//!
//! Writes go through one writer thread that groups whatever jobs are waiting into a single
//! transaction (group commit): each job runs inside its own savepoint, so one failing job does
//! not undo the others, and no caller hears "done" before the transaction holding its job has
//! committed. Reads use a separate connection, which WAL lets proceed alongside the writer.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    DeliveryOutcome, DeliveryRecord, Enqueue, PendingReport, ReportPass, StepEnd, StepRetry, Store,
    StoreError,
};
use crate::domain::{
    AuditRecord, Deployment, DeploymentId, DeploymentState, Intake, PauseKind, Paused,
    PreviewRequest, Release, RevisionState, SourceRevision, Step,
};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_rollback.sql"),
    include_str!("migrations/0003_reporters.sql"),
    include_str!("migrations/0004_retries.sql"),
    include_str!("migrations/0005_interactions.sql"),
    include_str!("migrations/0006_report_outbox.sql"),
    include_str!("migrations/0007_delivery_sha.sql"),
    include_str!("migrations/0008_manifest_revisions.sql"),
    include_str!("migrations/0009_previews.sql"),
    include_str!("migrations/0010_holds.sql"),
    include_str!("migrations/0011_drift.sql"),
    include_str!("migrations/0012_windows.sql"),
    include_str!("migrations/0013_approvals.sql"),
    include_str!("migrations/0014_commit_time.sql"),
];
/// How long interaction ids are remembered: twice Discord's signature window.
const INTERACTION_MEMORY_MS: i64 = 10 * 60 * 1000;
/// Most jobs one transaction carries.
const MAX_GROUP: usize = 256;

type Reply = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;
/// A write: given the connection inside the group's transaction (or why that transaction
/// could not begin), it runs and returns how to answer once the commit is known.
type Job = Box<dyn FnOnce(Result<&Connection, Arc<rusqlite::Error>>) -> Reply + Send>;

pub struct SqliteStore {
    jobs: mpsc::UnboundedSender<Job>,
    reader: Arc<Mutex<Connection>>,
    changes: watch::Receiver<u64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let writer = Connection::open(path).map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        migrate(&writer).map_err(open_err)?;
        let reader = Connection::open(path).map_err(open_err)?;
        configure(&reader).map_err(open_err)?;
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let (changed, changes) = watch::channel(0u64);
        std::thread::Builder::new()
            .name("gantry-store-writer".into())
            .spawn(move || writer_loop(writer, rx, changed))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            jobs: tx,
            reader: Arc::new(Mutex::new(reader)),
            changes,
        })
    }

    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, StoreError>>();
        let job: Job = Box::new(move |conn: Result<&Connection, Arc<rusqlite::Error>>| {
            let result = match conn {
                Ok(conn) => run_in_savepoint(conn, f),
                // The transaction never began: the job does not run at all.
                Err(e) => {
                    let _ = tx.send(Err(StoreError::Commit(e)));
                    return Box::new(|_| {});
                }
            };
            Box::new(move |commit: Result<(), Arc<rusqlite::Error>>| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Commit(e)),
                };
                let _ = tx.send(out);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| StoreError::Closed)?;
            f(&conn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn run_in_savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = f(conn);
    match &result {
        Ok(_) => conn.execute_batch("RELEASE job")?,
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job")?,
    }
    result
}

/// Runs until every sender is gone: take what is waiting, one transaction, reply after commit.
fn writer_loop(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Job>,
    changed: watch::Sender<u64>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A failed BEGIN fails the whole batch: no job runs, so nothing can be committed
        // piecemeal by a savepoint outside a transaction.
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = Arc::new(e);
            for job in batch {
                job(Err(e.clone()))(Err(e.clone()));
            }
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(Ok(&conn))).collect();
        let committed = conn.execute_batch("COMMIT").map_err(Arc::new);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if committed.is_ok() {
            changed.send_modify(|n| *n = n.wrapping_add(1));
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ts(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(|m| Utc.timestamp_millis_opt(m).single())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn insert_deployment(conn: &Connection, e: &Enqueue, now: i64) -> Result<DeploymentId, StoreError> {
    let d = &e.deployment;
    let spec = serde_json::to_string(&d.spec).map_err(corrupt)?;
    let manifests = serde_json::to_string(&d.manifests).map_err(corrupt)?;
    let (state, finished) = match &e.refused {
        Some(_) => ("failed", Some(now)),
        None => ("queued", None),
    };
    conn.execute(
        "INSERT INTO deployments (app, sha, git_ref, trigger, actor, delivery_id, state, spec, created_at, restore_from, manifests, images_from, reason, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![d.app, d.sha, d.git_ref, d.trigger.as_str(), d.actor, d.delivery_id, state, spec, now, d.restore_from, manifests, d.images_from, e.refused, finished],
    )?;
    let id = conn.last_insert_rowid();
    if e.refused.is_some() {
        // A refusal runs nothing and replaces nothing already queued.
        return Ok(id);
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO steps (deployment_id, idx, kind, state) VALUES (?1, ?2, ?3, 'pending')",
    )?;
    for (i, kind) in e.steps.iter().enumerate() {
        stmt.execute(params![id, i as i64, kind.as_str()])?;
    }
    conn.execute(
        "UPDATE deployments SET state = 'superseded', reason = ?1, finished_at = ?2
         WHERE app = ?3 AND state IN ('queued', 'waiting', 'awaiting_approval') AND id < ?4",
        params![format!("superseded by #{id}"), now, d.app, id],
    )?;
    Ok(id)
}

fn insert_pause(conn: &Connection, p: &Paused) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO paused (app, reason, actor, at, kind) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (app) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, at = excluded.at, kind = excluded.kind",
        params![p.app, p.reason, p.actor, p.at.timestamp_millis(), p.kind.as_str()],
    )?;
    Ok(())
}

fn paused_apps(conn: &Connection) -> Result<Vec<Paused>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT app, reason, actor, at, kind FROM paused ORDER BY app")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Paused {
                app: r.get(0)?,
                reason: r.get(1)?,
                actor: r.get(2)?,
                at: ts(r.get(3)?).unwrap_or_default(),
                kind: if r.get::<_, String>(4)? == "hold" {
                    PauseKind::Hold
                } else {
                    PauseKind::Pause
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn insert_audit(conn: &Connection, record: &AuditRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            record.at.timestamp_millis(),
            record.actor,
            record.action,
            record.target,
            record.outcome,
            record.detail
        ],
    )?;
    Ok(())
}

fn insert_notice(conn: &Connection, app: &str, kind: &str, diff: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO drift_notices (app, kind, diff, at) VALUES (?1, ?2, ?3, ?4)",
        params![app, kind, diff, now_ms()],
    )?;
    Ok(())
}

fn is_active(conn: &Connection, app: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM deployments WHERE app = ?1 AND state IN ('queued', 'waiting', 'awaiting_approval', 'running') LIMIT 1",
        )?
        .exists([app])?)
}

const DRIFT_COLS: &str = "SELECT app, release_id, fingerprint, diff, since, heal_attempts, next_heal_at, heal_deployment FROM drift";

fn drift_row(r: &Row<'_>) -> rusqlite::Result<crate::domain::drift::Drift> {
    Ok(crate::domain::drift::Drift {
        app: r.get(0)?,
        release: r.get(1)?,
        fingerprint: r.get(2)?,
        diff: r.get(3)?,
        since: ts(r.get(4)?).unwrap_or_default(),
        heal_attempts: r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
        next_heal_at: ts(r.get(6)?),
        heal_deployment: r.get(7)?,
    })
}

fn parse_releases(rows: Vec<String>) -> Result<Vec<Release>, StoreError> {
    rows.iter()
        .map(|s| serde_json::from_str(s).map_err(corrupt))
        .collect()
}

const REVISION_COLS: &str =
    "SELECT source, sha, state, push, delivery_id, detail, trigger FROM source_revisions";

fn revision_row(r: &Row<'_>) -> rusqlite::Result<SourceRevision> {
    let state: String = r.get(2)?;
    let push: Option<String> = r.get(3)?;
    Ok(SourceRevision {
        source: r.get(0)?,
        sha: r.get(1)?,
        state: state.parse().map_err(|e: String| bad_column(2, e))?,
        push: match push {
            Some(p) => Some(serde_json::from_str(&p).map_err(|e| bad_column(3, e.to_string()))?),
            None => None,
        },
        delivery_id: r.get(4)?,
        detail: r.get(5)?,
        trigger: {
            let t: String = r.get(6)?;
            t.parse().map_err(|e: String| bad_column(6, e))?
        },
    })
}

fn insert_revision(conn: &Connection, r: &SourceRevision, now: i64) -> Result<bool, StoreError> {
    let push = r
        .push
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    let decided = (r.state != RevisionState::Pending).then_some(now);
    let n = conn.execute(
        "INSERT INTO source_revisions (source, sha, state, push, delivery_id, detail, created_at, decided_at, trigger)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (source, sha) DO NOTHING",
        params![r.source, r.sha, r.state.as_str(), push, r.delivery_id, r.detail, now, decided, r.trigger.as_str()],
    )?;
    Ok(n > 0)
}

/// One delivery, with the deployments or manifest revisions it brings, in one transaction.
fn record_delivery(
    conn: &Connection,
    delivery: DeliveryRecord,
    deployments: Vec<Enqueue>,
    revisions: Vec<SourceRevision>,
) -> Result<DeliveryOutcome, StoreError> {
    let mut revisions = revisions;
    let now = now_ms();
    let seen: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM deliveries WHERE id = ?1",
            [&delivery.id],
            |r| r.get(0),
        )
        .optional()?;
    if seen.is_some() {
        return Ok(DeliveryOutcome::Duplicate);
    }
    let mut record = delivery;
    let mut deployments = deployments;
    if let (Some(repo), Some(git_ref), Some(sha)) = (&record.repo, &record.git_ref, &record.sha) {
        // Polls and webhooks take each pushed sha in once between them.
        let earlier: Option<(String, String)> = conn
            .query_row(
                "SELECT event, id FROM deliveries
                         WHERE sha = ?1 AND git_ref = ?2 AND lower(repo) = lower(?3)
                         ORDER BY event = 'poll' DESC, received_at LIMIT 1",
                params![sha, git_ref, repo],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let earlier = earlier.as_ref().map(|(e, i)| (e.as_str(), i.as_str()));
        match crate::plan::intake::seen_before(&record.event, earlier) {
            crate::plan::intake::Seen::New => {}
            crate::plan::intake::Seen::Duplicate => return Ok(DeliveryOutcome::Duplicate),
            crate::plan::intake::Seen::Ignore(why) => {
                deployments.clear();
                revisions.clear();
                record.outcome = Intake::Ignored;
                record.reason = Some(why);
            }
        }
    }
    // A revision the source already has (Gantry's own write-back, or taken in before) is
    // nothing new.
    let before = revisions.len();
    let mut known =
        conn.prepare_cached("SELECT 1 FROM source_revisions WHERE source = ?1 AND sha = ?2")?;
    let mut fresh = Vec::new();
    for r in revisions {
        if !known.exists(params![r.source, r.sha])? {
            fresh.push(r);
        }
    }
    drop(known);
    let revisions = fresh;
    if before > 0 && revisions.is_empty() && record.outcome == Intake::Queued {
        record.outcome = Intake::Ignored;
        record.reason = Some("this revision of the manifests is already known (taken in before, or Gantry's own write-back)".into());
    }
    let (go, held) = crate::plan::intake::hold_paused(deployments, &paused_apps(conn)?);
    if go.is_empty() && revisions.is_empty() {
        if let Some(why) = held {
            record.outcome = Intake::Ignored;
            record.reason = Some(why);
        }
    }
    conn.execute(
        "INSERT INTO deliveries (id, event, received_at, repo, git_ref, sha, outcome, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            record.id,
            record.event,
            now,
            record.repo,
            record.git_ref,
            record.sha,
            record.outcome.as_str(),
            record.reason
        ],
    )?;
    let ids = go
        .iter()
        .map(|e| insert_deployment(conn, e, now))
        .collect::<Result<Vec<_>, _>>()?;
    for r in &revisions {
        insert_revision(conn, r, now)?;
    }
    Ok(DeliveryOutcome::Recorded {
        deployments: ids,
        record,
    })
}

const DEPLOYMENT_COLUMNS: &str = "id, app, sha, git_ref, trigger, actor, delivery_id, state, reason, spec, created_at, started_at, finished_at, restore_from, manifests, images_from, window_override, committed_at";

/// A column that holds something Gantry cannot read back is a corrupt record, not a default.
fn pending_row(r: &Row<'_>) -> rusqlite::Result<PendingReport> {
    Ok(PendingReport {
        deployment_id: r.get(0)?,
        reporter: r.get(1)?,
        attempts: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
        next_at: ts(r.get(3)?),
        error: r.get(4)?,
        since: ts(r.get(5)?).unwrap_or_default(),
        app: r.get(6)?,
    })
}

const PENDING_COLS: &str = "SELECT deployment_id, reporter, attempts, next_at, error, since, d.app
     FROM report_pending JOIN deployments d ON d.id = deployment_id";

fn bad_column(index: usize, message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        message.into().into(),
    )
}

fn deployment_row(r: &Row<'_>) -> rusqlite::Result<Deployment> {
    let trigger: String = r.get(4)?;
    let state: String = r.get(7)?;
    let spec: String = r.get(9)?;
    Ok(Deployment {
        id: r.get(0)?,
        app: r.get(1)?,
        sha: r.get(2)?,
        git_ref: r.get(3)?,
        trigger: trigger.parse().map_err(|e: String| bad_column(4, e))?,
        actor: r.get(5)?,
        delivery_id: r.get(6)?,
        restore_from: r.get(13)?,
        images_from: r.get(15)?,
        // Deployments recorded before manifest revisions were: a local directory.
        manifests: match r.get::<_, Option<String>>(14)? {
            Some(m) => serde_json::from_str(&m).map_err(|e| bad_column(14, e.to_string()))?,
            None => Default::default(),
        },
        state: state.parse().map_err(|e: String| bad_column(7, e))?,
        reason: r.get(8)?,
        created_at: ts(r.get(10)?).unwrap_or_default(),
        started_at: ts(r.get(11)?),
        finished_at: ts(r.get(12)?),
        window_override: r.get(16)?,
        committed_at: ts(r.get(17)?),
        spec: serde_json::from_str(&spec).map_err(|e| bad_column(9, e.to_string()))?,
        steps: vec![],
    })
}

fn load_deployments(
    conn: &Connection,
    where_sql: &str,
    params: &[&dyn rusqlite::ToSql],
    with_logs: bool,
) -> Result<Vec<Deployment>, StoreError> {
    let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments {where_sql}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params, deployment_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for mut d in rows {
        d.steps = load_steps(conn, d.id, with_logs)?;
        out.push(d);
    }
    Ok(out)
}

fn load_steps(
    conn: &Connection,
    id: DeploymentId,
    with_logs: bool,
) -> Result<Vec<Step>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, kind, state, attempts, started_at, finished_at, outcome, log, next_retry_at
         FROM steps WHERE deployment_id = ?1 ORDER BY idx",
    )?;
    let steps = stmt
        .query_map([id], |r| {
            let kind: String = r.get(1)?;
            let state: String = r.get(2)?;
            Ok((
                r.get::<_, i64>(0)? as u32,
                kind,
                state,
                r.get::<_, i64>(3)? as u32,
                ts(r.get(4)?),
                ts(r.get(5)?),
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                ts(r.get(8)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    steps
        .into_iter()
        .map(
            |(
                index,
                kind,
                state,
                attempts,
                started_at,
                finished_at,
                outcome,
                log,
                next_retry_at,
            )| {
                Ok(Step {
                    index,
                    kind: kind.parse().map_err(corrupt)?,
                    state: state.parse().map_err(corrupt)?,
                    attempts,
                    started_at,
                    finished_at,
                    outcome,
                    next_retry_at,
                    log: if with_logs {
                        Some(log.unwrap_or_default())
                    } else {
                        None
                    },
                })
            },
        )
        .collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?;
        self.write(|_| Ok(())).await
    }

    async fn record_delivery(
        &self,
        delivery: DeliveryRecord,
        deployments: Vec<Enqueue>,
    ) -> Result<DeliveryOutcome, StoreError> {
        self.write(move |conn| record_delivery(conn, delivery, deployments, vec![]))
            .await
    }

    async fn record_revision_delivery(
        &self,
        delivery: DeliveryRecord,
        revisions: Vec<SourceRevision>,
    ) -> Result<DeliveryOutcome, StoreError> {
        self.write(move |conn| record_delivery(conn, delivery, vec![], revisions))
            .await
    }

    async fn add_revision(&self, revision: SourceRevision) -> Result<bool, StoreError> {
        self.write(move |conn| insert_revision(conn, &revision, now_ms()))
            .await
    }

    async fn pending_revisions(&self, limit: usize) -> Result<Vec<SourceRevision>, StoreError> {
        self.read(move |c| {
            let sql = format!("{REVISION_COLS} WHERE state = 'pending' ORDER BY seq LIMIT ?1");
            let rows = c
                .prepare_cached(&sql)?
                .query_map(params![limit as i64], revision_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn decide_revision(
        &self,
        source: &str,
        sha: &str,
        state: RevisionState,
        detail: Option<String>,
        deployments: Vec<Enqueue>,
    ) -> Result<Vec<DeploymentId>, StoreError> {
        let (source, sha) = (source.to_owned(), sha.to_owned());
        self.write(move |conn| {
            let now = now_ms();
            let moved = conn.execute(
                "UPDATE source_revisions SET state = ?1, detail = ?2, decided_at = ?3
                 WHERE source = ?4 AND sha = ?5 AND state = 'pending'",
                params![state.as_str(), detail, now, source, sha],
            )?;
            if moved == 0 {
                return Ok(vec![]);
            }
            let (refused, automatic): (Vec<_>, Vec<_>) =
                deployments.into_iter().partition(|e| e.refused.is_some());
            let (go, _held) = crate::plan::intake::hold_paused(automatic, &paused_apps(conn)?);
            refused
                .iter()
                .chain(go.iter())
                .map(|e| insert_deployment(conn, e, now))
                .collect()
        })
        .await
    }

    async fn record_preview_delivery(
        &self,
        delivery: DeliveryRecord,
        previews: Vec<PreviewRequest>,
    ) -> Result<DeliveryOutcome, StoreError> {
        self.write(move |conn| {
            let out = record_delivery(conn, delivery, vec![], vec![])?;
            if matches!(out, DeliveryOutcome::Recorded { .. }) {
                let now = now_ms();
                for p in &previews {
                    conn.execute(
                        "INSERT INTO previews (source, repo, number, sha, state, created_at)
                         VALUES (?1, ?2, ?3, ?4, 'pending', ?5) ON CONFLICT DO NOTHING",
                        params![p.source, p.repo, p.number as i64, p.sha, now],
                    )?;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn pending_previews(
        &self,
        limit: usize,
    ) -> Result<Vec<(i64, PreviewRequest, u32)>, StoreError> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT seq, source, repo, number, sha, attempts FROM previews
                     WHERE state = 'pending' ORDER BY seq LIMIT ?1",
                )?
                .query_map(params![limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        PreviewRequest {
                            source: r.get(1)?,
                            repo: r.get(2)?,
                            number: r.get::<_, i64>(3)?.max(0) as u64,
                            sha: r.get(4)?,
                        },
                        r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn finish_preview(
        &self,
        seq: i64,
        state: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let state = state.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE previews SET state = ?1, detail = ?2, attempts = attempts + 1 WHERE seq = ?3",
                params![state, detail, seq],
            )?;
            Ok(())
        })
        .await
    }

    async fn applied_revision(&self, source: &str) -> Result<Option<String>, StoreError> {
        let source = source.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT sha FROM source_revisions WHERE source = ?1 AND state = 'applied'
                 ORDER BY decided_at DESC, seq DESC LIMIT 1",
                [&source],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn revisions(
        &self,
        source: &str,
        limit: usize,
    ) -> Result<Vec<SourceRevision>, StoreError> {
        let source = source.to_owned();
        self.read(move |c| {
            let sql = format!("{REVISION_COLS} WHERE source = ?1 ORDER BY seq DESC LIMIT ?2");
            let rows = c
                .prepare_cached(&sql)?
                .query_map(params![source, limit as i64], revision_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn enqueue(&self, e: Enqueue) -> Result<DeploymentId, StoreError> {
        self.write(move |conn| insert_deployment(conn, &e, now_ms()))
            .await
    }

    async fn enqueue_audited(
        &self,
        e: Enqueue,
        pause: Option<Paused>,
        audit: AuditRecord,
    ) -> Result<DeploymentId, StoreError> {
        self.write(move |conn| {
            let id = insert_deployment(conn, &e, now_ms())?;
            if let Some(p) = &pause {
                insert_pause(conn, p)?;
            }
            let detail = match &audit.detail {
                Some(d) => format!("deployment #{id} {d}"),
                None => format!("deployment #{id}"),
            };
            insert_audit(
                conn,
                &AuditRecord {
                    detail: Some(detail),
                    ..audit
                },
            )?;
            Ok(id)
        })
        .await
    }

    async fn claim_up_to(
        &self,
        limit: usize,
        up_to: DeploymentId,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.write(move |conn| {
            let now = now_ms();
            let mut stmt = conn.prepare_cached(
                "SELECT app, MAX(id) FROM deployments d WHERE state = 'queued' AND id <= ?2
                 AND NOT EXISTS (SELECT 1 FROM deployments r WHERE r.app = d.app AND r.state = 'running')
                 GROUP BY app ORDER BY MIN(id) LIMIT ?1",
            )?;
            let picks = stmt
                .query_map(params![limit as i64, up_to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut claimed = Vec::new();
            for (app, id) in picks {
                conn.execute(
                    "UPDATE deployments SET state = 'superseded', reason = ?1, finished_at = ?2
                     WHERE app = ?3 AND state = 'queued' AND id < ?4",
                    params![format!("superseded by #{id}"), now, app, id],
                )?;
                conn.execute(
                    "UPDATE deployments SET state = 'running', started_at = ?1 WHERE id = ?2",
                    params![now, id],
                )?;
                claimed.extend(load_deployments(conn, "WHERE id = ?1", &[&id], false)?);
            }
            Ok(claimed)
        })
        .await
    }

    async fn running(&self) -> Result<Vec<Deployment>, StoreError> {
        self.read(|c| load_deployments(c, "WHERE state = 'running' ORDER BY id", &[], false))
            .await
    }

    async fn step_started(&self, id: DeploymentId, index: u32) -> Result<u32, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE steps SET state = 'running', attempts = attempts + 1, started_at = ?1,
                 finished_at = NULL, outcome = NULL, next_retry_at = NULL
                 WHERE deployment_id = ?2 AND idx = ?3",
                params![now_ms(), id, index],
            )?;
            Ok(conn.query_row(
                "SELECT attempts FROM steps WHERE deployment_id = ?1 AND idx = ?2",
                params![id, index],
                |r| r.get::<_, i64>(0),
            )? as u32)
        })
        .await
    }

    async fn step_log(&self, id: DeploymentId, index: u32, log: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE steps SET log = ?1 WHERE deployment_id = ?2 AND idx = ?3",
                params![log, id, index],
            )?;
            Ok(())
        })
        .await
    }

    async fn first_interaction(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| {
            let now = now_ms();
            conn.execute(
                "DELETE FROM interactions WHERE at < ?1",
                [now - INTERACTION_MEMORY_MS],
            )?;
            let inserted = conn.execute(
                "INSERT INTO interactions (id, at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![id, now],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn step_retrying(
        &self,
        id: DeploymentId,
        index: u32,
        retry: StepRetry,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE steps SET outcome = ?1, log = ?2, next_retry_at = ?3
                 WHERE deployment_id = ?4 AND idx = ?5",
                params![
                    retry.outcome,
                    retry.log,
                    retry.next_at.timestamp_millis(),
                    id,
                    index
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn step_finished(
        &self,
        id: DeploymentId,
        index: u32,
        end: StepEnd,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE steps SET state = ?1, outcome = ?2, log = ?3, finished_at = ?4
                 WHERE deployment_id = ?5 AND idx = ?6",
                params![
                    end.state.as_str(),
                    end.outcome,
                    end.log,
                    now_ms(),
                    id,
                    index
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_sha(
        &self,
        id: DeploymentId,
        sha: &str,
        committed_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let sha = sha.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE deployments SET sha = ?1, committed_at = ?3 WHERE id = ?2",
                params![sha, id, committed_at.map(|t| t.timestamp_millis())],
            )?;
            Ok(())
        })
        .await
    }

    async fn finish(
        &self,
        id: DeploymentId,
        state: DeploymentState,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE deployments SET state = ?1, reason = ?2, finished_at = ?3
                 WHERE id = ?4 AND state IN ('queued', 'waiting', 'awaiting_approval', 'running')",
                params![state.as_str(), reason, now_ms(), id],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_release(&self, release: Release) -> Result<(), StoreError> {
        self.write(move |conn| {
            let content = serde_json::to_string(&release).map_err(corrupt)?;
            conn.execute(
                "INSERT INTO releases (deployment_id, app, sha, git_ref, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (deployment_id) DO UPDATE SET content = excluded.content",
                params![
                    release.deployment_id,
                    release.app,
                    release.sha,
                    release.git_ref,
                    content,
                    release.created_at.timestamp_millis()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn releases(&self, app: &str, limit: usize) -> Result<Vec<Release>, StoreError> {
        let app = app.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT content FROM releases WHERE app = ?1 ORDER BY deployment_id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![app, limit as i64], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            parse_releases(rows)
        })
        .await
    }

    async fn release_of(&self, id: DeploymentId) -> Result<Option<Release>, StoreError> {
        self.read(move |c| {
            let row: Option<String> = c
                .query_row(
                    "SELECT content FROM releases WHERE deployment_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(parse_releases(row.into_iter().collect())?.pop())
        })
        .await
    }

    async fn good_releases(
        &self,
        app: &str,
        limit: usize,
    ) -> Result<Vec<(Deployment, Release)>, StoreError> {
        let app = app.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.content FROM releases r JOIN deployments d ON d.id = r.deployment_id
                 WHERE r.app = ?1 AND d.state = 'succeeded'
                 ORDER BY r.deployment_id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![app, limit as i64], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for release in parse_releases(rows)? {
                let id = release.deployment_id;
                let d = load_deployments(c, "WHERE id = ?1", &[&id], false)?
                    .pop()
                    .ok_or_else(|| corrupt(format!("release of missing deployment #{id}")))?;
                out.push((d, release));
            }
            Ok(out)
        })
        .await
    }

    async fn deployment(
        &self,
        id: DeploymentId,
        with_logs: bool,
    ) -> Result<Option<Deployment>, StoreError> {
        self.read(move |c| Ok(load_deployments(c, "WHERE id = ?1", &[&id], with_logs)?.pop()))
            .await
    }

    async fn deployments(
        &self,
        app: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        let app = app.map(str::to_owned);
        self.read(move |c| {
            let limit = limit as i64;
            match &app {
                Some(a) => load_deployments(
                    c,
                    "WHERE app = ?1 ORDER BY id DESC LIMIT ?2",
                    &[a, &limit],
                    false,
                ),
                None => load_deployments(c, "ORDER BY id DESC LIMIT ?1", &[&limit], false),
            }
        })
        .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, event, repo, git_ref, sha, outcome, reason FROM deliveries WHERE id = ?1",
                [id],
                |r| {
                    Ok(DeliveryRecord {
                        id: r.get(0)?,
                        event: r.get(1)?,
                        repo: r.get(2)?,
                        git_ref: r.get(3)?,
                        sha: r.get(4)?,
                        outcome: r
                            .get::<_, String>(5)?
                            .parse()
                            .map_err(|e: String| bad_column(5, e))?,
                        reason: r.get(6)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn deliveries_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
        })
        .await
    }

    async fn not_started(&self) -> Result<Vec<Deployment>, StoreError> {
        self.read(|c| {
            load_deployments(
                c,
                "WHERE state IN ('queued', 'waiting', 'awaiting_approval') ORDER BY id",
                &[],
                false,
            )
        })
        .await
    }

    async fn set_gate(
        &self,
        id: DeploymentId,
        state: DeploymentState,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE deployments SET state = ?1, reason = ?2
                 WHERE id = ?3 AND state IN ('queued', 'waiting', 'awaiting_approval')
                 AND (state != ?1 OR reason IS NOT ?2)",
                params![state.as_str(), reason, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn approvals(
        &self,
        id: DeploymentId,
    ) -> Result<Vec<crate::domain::Approval>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT actor, approve, counted, at FROM approvals WHERE deployment_id = ?1 ORDER BY at, actor",
            )?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok(crate::domain::Approval {
                        actor: r.get(0)?,
                        approve: r.get(1)?,
                        counted: r.get(2)?,
                        at: ts(r.get(3)?).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn record_approval(
        &self,
        id: DeploymentId,
        approval: crate::domain::Approval,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let waiting = conn
                .prepare_cached(
                    "SELECT 1 FROM deployments WHERE id = ?1 AND state IN ('queued', 'waiting', 'awaiting_approval')",
                )?
                .exists([id])?;
            let new = waiting
                && conn.execute(
                    "INSERT INTO approvals (deployment_id, actor, approve, counted, at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (deployment_id, actor) DO NOTHING",
                    params![
                        id,
                        approval.actor,
                        approval.approve,
                        approval.counted,
                        approval.at.timestamp_millis()
                    ],
                )? > 0;
            insert_audit(
                conn,
                &AuditRecord {
                    outcome: match (waiting, new) {
                        (false, _) => "had already started or ended".into(),
                        (true, false) => "already recorded".into(),
                        (true, true) => audit.outcome.clone(),
                    },
                    ..audit
                },
            )?;
            // A change of approvals moves the deployment's rev, so reporters redraw it.
            if new {
                conn.execute("UPDATE deployments SET reason = reason WHERE id = ?1", [id])?;
            }
            Ok(new)
        })
        .await
    }

    async fn override_window(
        &self,
        id: DeploymentId,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE deployments SET window_override = ?1, state = 'queued', reason = NULL
                 WHERE id = ?2 AND state IN ('queued', 'waiting', 'awaiting_approval')",
                params![audit.actor, id],
            )? > 0;
            insert_audit(
                conn,
                &AuditRecord {
                    outcome: if changed {
                        audit.outcome.clone()
                    } else {
                        "had already started".into()
                    },
                    ..audit
                },
            )?;
            Ok(changed)
        })
        .await
    }

    async fn dora_rows(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::plan::dora::Row>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, app, trigger, state, finished_at, committed_at, images_from FROM deployments
                 WHERE finished_at >= ?1
                    OR id IN (SELECT images_from FROM deployments WHERE finished_at >= ?1 AND images_from IS NOT NULL)",
            )?;
            let rows = stmt
                .query_map([since.timestamp_millis()], |r| {
                    let trigger: String = r.get(2)?;
                    let state: String = r.get(3)?;
                    Ok(crate::plan::dora::Row {
                        id: r.get(0)?,
                        app: r.get(1)?,
                        trigger: trigger.parse().map_err(|e: String| bad_column(2, e))?,
                        state: state.parse().map_err(|e: String| bad_column(3, e))?,
                        finished_at: ts(r.get(4)?),
                        committed_at: ts(r.get(5)?),
                        images_from: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn record_drift(
        &self,
        app: &str,
        release: DeploymentId,
        found: Option<(String, String)>,
        read_since: DateTime<Utc>,
    ) -> Result<Option<crate::domain::drift::DriftChange>, StoreError> {
        use crate::domain::drift::DriftChange;
        let app = app.to_owned();
        self.write(move |conn| {
            // What was read is only true if no deployment of the app moved meanwhile.
            let moved = conn
                .prepare_cached(
                    "SELECT 1 FROM deployments WHERE app = ?1 AND id >= ?2
                     AND (state IN ('queued', 'waiting', 'awaiting_approval', 'running') OR created_at >= ?3 OR finished_at >= ?3)
                     LIMIT 1",
                )?
                .exists(params![app, release, read_since.timestamp_millis()])?;
            if moved {
                return Ok(None);
            }
            let recorded: Option<String> = conn
                .query_row(
                    "SELECT fingerprint FROM drift WHERE app = ?1",
                    [&app],
                    |r| r.get(0),
                )
                .optional()?;
            let audit = |outcome: &str, detail: String| {
                insert_audit(
                    conn,
                    &AuditRecord {
                        at: Utc::now(),
                        actor: "gantry".into(),
                        action: "drift".into(),
                        target: app.clone(),
                        outcome: outcome.into(),
                        detail: Some(detail),
                    },
                )
            };
            match (found, recorded) {
                (None, None) => Ok(Some(DriftChange::None)),
                (None, Some(_)) => {
                    conn.execute("DELETE FROM drift WHERE app = ?1", [&app])?;
                    audit("cleared", format!("live state matches deployment #{release}"))?;
                    insert_notice(conn, &app, "cleared", "")?;
                    Ok(Some(DriftChange::Cleared))
                }
                (Some((fp, _)), Some(old)) if fp == old => Ok(Some(DriftChange::Unchanged)),
                (Some((fp, diff)), old) => {
                    // A different drift keeps the heal count: healing did not fix it.
                    conn.execute(
                        "INSERT INTO drift (app, release_id, fingerprint, diff, since) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (app) DO UPDATE SET release_id = excluded.release_id,
                           fingerprint = excluded.fingerprint, diff = excluded.diff, since = excluded.since",
                        params![app, release, fp, diff, now_ms()],
                    )?;
                    let what = if old.is_some() { "changed" } else { "detected" };
                    audit(what, format!("against deployment #{release}"))?;
                    insert_notice(conn, &app, "detected", &diff)?;
                    Ok(Some(DriftChange::Detected))
                }
            }
        })
        .await
    }

    async fn drift_of(&self, app: &str) -> Result<Option<crate::domain::drift::Drift>, StoreError> {
        let app = app.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("{DRIFT_COLS} WHERE app = ?1"))?
                .query_row([app], drift_row)
                .optional()?)
        })
        .await
    }

    async fn drifts(&self) -> Result<Vec<crate::domain::drift::Drift>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("{DRIFT_COLS} ORDER BY app"))?;
            let rows = stmt
                .query_map([], drift_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn enqueue_heal(
        &self,
        e: Enqueue,
        next_heal_at: DateTime<Utc>,
        audit: AuditRecord,
    ) -> Result<Option<DeploymentId>, StoreError> {
        self.write(move |conn| {
            let app = e.deployment.app.clone();
            let paused = conn
                .prepare_cached("SELECT 1 FROM paused WHERE app = ?1")?
                .exists([&app])?;
            if paused || is_active(conn, &app)? {
                return Ok(None);
            }
            let id = insert_deployment(conn, &e, now_ms())?;
            conn.execute(
                "UPDATE drift SET heal_attempts = heal_attempts + 1, next_heal_at = ?2, heal_deployment = ?3
                 WHERE app = ?1",
                params![app, next_heal_at.timestamp_millis(), id],
            )?;
            insert_audit(
                conn,
                &AuditRecord {
                    detail: Some(match &audit.detail {
                        Some(d) => format!("deployment #{id} {d}"),
                        None => format!("deployment #{id}"),
                    }),
                    ..audit
                },
            )?;
            insert_notice(conn, &app, "healing", &format!("deployment #{id}"))?;
            Ok(Some(id))
        })
        .await
    }

    async fn active(&self, app: &str) -> Result<bool, StoreError> {
        let app = app.to_owned();
        self.read(move |c| is_active(c, &app)).await
    }

    async fn drift_notices(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::domain::drift::DriftNotice>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, app, kind, diff, at FROM drift_notices WHERE posted = 0 ORDER BY seq LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok(crate::domain::drift::DriftNotice {
                        seq: r.get(0)?,
                        app: r.get(1)?,
                        kind: r.get(2)?,
                        diff: r.get(3)?,
                        at: ts(r.get(4)?).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn drift_notice_posted(&self, seq: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute("UPDATE drift_notices SET posted = 1 WHERE seq = ?1", [seq])?;
            // Posted notices are history the audit log keeps: the outbox stays small.
            conn.execute(
                "DELETE FROM drift_notices WHERE posted = 1 AND at < ?1",
                [now_ms() - 7 * 24 * 3600 * 1000],
            )?;
            Ok(())
        })
        .await
    }

    async fn pause(&self, p: Paused) -> Result<(), StoreError> {
        self.write(move |conn| insert_pause(conn, &p)).await
    }

    async fn resume(&self, app: &str) -> Result<bool, StoreError> {
        let app = app.to_owned();
        self.write(move |conn| Ok(conn.execute("DELETE FROM paused WHERE app = ?1", [app])? > 0))
            .await
    }

    async fn paused(&self) -> Result<Vec<Paused>, StoreError> {
        self.read(paused_apps).await
    }

    async fn reporter_state(
        &self,
        id: DeploymentId,
        reporter: &str,
    ) -> Result<Option<String>, StoreError> {
        let reporter = reporter.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT value FROM reporter_state WHERE deployment_id = ?1 AND reporter = ?2",
            )?;
            let mut rows = stmt.query(params![id, reporter])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        })
        .await
    }

    async fn set_reporter_state(
        &self,
        id: DeploymentId,
        reporter: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let (reporter, value) = (reporter.to_owned(), value.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO reporter_state (deployment_id, reporter, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (deployment_id, reporter) DO UPDATE SET value = excluded.value",
                params![id, reporter, value],
            )?;
            Ok(())
        })
        .await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    async fn changed_since(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(DeploymentId, i64)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, rev FROM deployments WHERE rev > ?1 ORDER BY rev LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn report_cursor(&self, reporter: &str) -> Result<i64, StoreError> {
        let reporter = reporter.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT rev FROM report_cursors WHERE reporter = ?1",
                [reporter],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
        })
        .await
    }

    async fn init_report_cursor(&self, reporter: &str) -> Result<i64, StoreError> {
        let reporter = reporter.to_owned();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO report_cursors (reporter, rev)
                 SELECT ?1, COALESCE(MAX(rev), 0) FROM deployments WHERE true
                 ON CONFLICT (reporter) DO NOTHING",
                [&reporter],
            )?;
            Ok(conn.query_row(
                "SELECT rev FROM report_cursors WHERE reporter = ?1",
                [&reporter],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn pending_reports(
        &self,
        reporter: Option<&str>,
        deployment: Option<DeploymentId>,
        failing: bool,
        limit: usize,
    ) -> Result<Vec<PendingReport>, StoreError> {
        let reporter = reporter.map(str::to_owned);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "{PENDING_COLS} WHERE (?1 IS NULL OR reporter = ?1)
                 AND (?2 IS NULL OR deployment_id = ?2) AND (?3 = 0 OR error IS NOT NULL)
                 ORDER BY deployment_id DESC, reporter LIMIT ?4"
            ))?;
            let rows = stmt
                .query_map(
                    params![reporter, deployment, failing as i64, limit as i64],
                    pending_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn record_report_pass(&self, reporter: &str, pass: ReportPass) -> Result<(), StoreError> {
        let reporter = reporter.to_owned();
        self.write(move |conn| {
            let mut clear = conn.prepare_cached(
                "DELETE FROM report_pending WHERE deployment_id = ?1 AND reporter = ?2",
            )?;
            for id in &pass.done {
                clear.execute(params![id, reporter])?;
            }
            let mut owe = conn.prepare_cached(
                "INSERT INTO report_pending (deployment_id, reporter, attempts, next_at, error, since)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (deployment_id, reporter) DO UPDATE SET attempts = excluded.attempts,
                 next_at = excluded.next_at, error = excluded.error",
            )?;
            for p in &pass.pending {
                owe.execute(params![
                    p.deployment_id,
                    reporter,
                    p.attempts as i64,
                    p.next_at.map(|t| t.timestamp_millis()),
                    p.error,
                    p.since.timestamp_millis()
                ])?;
            }
            if let Some(rev) = pass.cursor {
                conn.execute(
                    "INSERT INTO report_cursors (reporter, rev) VALUES (?1, ?2)
                     ON CONFLICT (reporter) DO UPDATE SET rev = MAX(rev, excluded.rev)",
                    params![reporter, rev],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.write(move |conn| insert_audit(conn, &record)).await
    }

    async fn audits(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let target = target.map(str::to_owned);
        self.read(move |c| {
            let map = |r: &Row<'_>| {
                Ok(AuditRecord {
                    at: ts(r.get(0)?).unwrap_or_default(),
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    outcome: r.get(4)?,
                    detail: r.get(5)?,
                })
            };
            let cols = "SELECT at, actor, action, target, outcome, detail FROM audit";
            let rows = match &target {
                Some(t) => c
                    .prepare_cached(&format!(
                        "{cols} WHERE target = ?1 ORDER BY id DESC LIMIT ?2"
                    ))?
                    .query_map(params![t, limit as i64], map)?
                    .collect::<Result<Vec<_>, _>>()?,
                None => c
                    .prepare_cached(&format!("{cols} ORDER BY id DESC LIMIT ?1"))?
                    .query_map(params![limit as i64], map)?
                    .collect::<Result<Vec<_>, _>>()?,
            };
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::testing::enqueue;

    #[tokio::test]
    async fn newest_queued_wins_and_older_are_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).unwrap();
        let a1 = store.enqueue(enqueue("a")).await.unwrap();
        let claimed = store.claim(10).await.unwrap();
        assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![a1]);
        let a2 = store.enqueue(enqueue("a")).await.unwrap();
        let a3 = store.enqueue(enqueue("a")).await.unwrap();
        let b1 = store.enqueue(enqueue("b")).await.unwrap();
        // a is running: only b can start.
        let claimed = store.claim(10).await.unwrap();
        assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![b1]);
        let d2 = store.deployment(a2, false).await.unwrap().unwrap();
        assert_eq!(d2.state, DeploymentState::Superseded);
        assert_eq!(
            d2.reason.as_deref(),
            Some(format!("superseded by #{a3}").as_str())
        );
        store
            .finish(a1, DeploymentState::Succeeded, None)
            .await
            .unwrap();
        let claimed = store.claim(10).await.unwrap();
        assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![a3]);
        assert_eq!(claimed[0].steps.len(), 2);
    }

    #[tokio::test]
    async fn a_delivery_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).unwrap();
        let rec = DeliveryRecord {
            id: "d-1".into(),
            event: "push".into(),
            repo: None,
            git_ref: None,
            sha: None,
            outcome: Intake::Queued,
            reason: None,
        };
        let first = store
            .record_delivery(rec.clone(), vec![enqueue("a")])
            .await
            .unwrap();
        assert!(
            matches!(first, DeliveryOutcome::Recorded { ref deployments, .. } if deployments.len() == 1)
        );
        let again = store
            .record_delivery(rec, vec![enqueue("a")])
            .await
            .unwrap();
        assert_eq!(again, DeliveryOutcome::Duplicate);
        assert_eq!(store.deployments(Some("a"), 10).await.unwrap().len(), 1);
    }
}
