//! Durable state: deliveries, deployments and their steps, releases, audit records.
//!
//! [`Store`] is the port the rest of Gantry uses; [`sqlite::SqliteStore`] is the embedded
//! default. This module tree is the only code that speaks SQL. The store decides nothing: it
//! records transitions atomically and answers queries.

pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::domain::Enqueue;
use crate::domain::{
    AuditRecord, Deployment, DeploymentId, DeploymentState, Intake, Paused, PreviewRequest,
    Release, RevisionState, SourceRevision, StepState,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The transaction that held this write did not begin or commit; nothing of it is kept.
    #[error("the store could not commit: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
    #[error("cannot open the store at {path}: {message}")]
    Open { path: String, message: String },
}

/// A webhook delivery as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub event: String,
    pub repo: Option<String>,
    pub git_ref: Option<String>,
    pub sha: Option<String>,
    pub outcome: Intake,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// First sighting: recorded (as `record`: a push to paused apps only is recorded as
    /// ignored), with the deployments it created.
    Recorded {
        deployments: Vec<DeploymentId>,
        record: DeliveryRecord,
    },
    /// This delivery id was recorded before; nothing changed.
    Duplicate,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub struct StepEnd {
    pub state: StepState,
    pub outcome: String,
    pub log: String,
}

/// A report a reporter still owes: an attempt failed (and when it is tried again), or an
/// edit was held back to coalesce (`attempts` 0, no error).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReport {
    pub deployment_id: DeploymentId,
    /// The deployment's app (read back; ignored when recording).
    pub app: String,
    pub reporter: String,
    pub attempts: u32,
    /// When it is tried again; `None` once the reporter gave up (a later change of the
    /// deployment tries again).
    pub next_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last failure, redacted.
    pub error: Option<String>,
    /// When the first failure (or hold) of this row happened.
    pub since: chrono::DateTime<chrono::Utc>,
}

/// What one pass of a reporter handled, recorded in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ReportPass {
    /// Deployments now reported as they stand: their pending rows go.
    pub done: Vec<DeploymentId>,
    /// Deployments still owed (failed or held back).
    pub pending: Vec<PendingReport>,
    /// The highest rev this pass handled, when it read changes.
    pub cursor: Option<i64>,
}

/// A step whose attempt failed transiently and that runs again at `next_at`.
#[derive(Debug, Clone)]
pub struct StepRetry {
    /// What failed, shown as the step's outcome while it waits.
    pub outcome: String,
    pub log: String,
    pub next_at: chrono::DateTime<chrono::Utc>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store can serve reads and writes.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Atomically records a delivery and the deployments it asks for, superseding queued
    /// deployments of the same apps. A delivery id seen before changes nothing. Apps paused
    /// when the transaction runs take no deployment (`plan::intake::hold_paused`): a pause
    /// committed a moment before is never overtaken by a push read a moment earlier.
    async fn record_delivery(
        &self,
        delivery: DeliveryRecord,
        deployments: Vec<Enqueue>,
    ) -> Result<DeliveryOutcome, StoreError>;

    /// Records a delivery that brought new revisions of git manifest sources, as `pending`,
    /// in one transaction (polls and webhooks take a sha in once between them, as above).
    async fn record_revision_delivery(
        &self,
        delivery: DeliveryRecord,
        revisions: Vec<SourceRevision>,
    ) -> Result<DeliveryOutcome, StoreError>;

    /// Adds a revision unless the source already has that sha; true when added.
    async fn add_revision(&self, revision: SourceRevision) -> Result<bool, StoreError>;

    /// Pending revisions, oldest first.
    async fn pending_revisions(&self, limit: usize) -> Result<Vec<SourceRevision>, StoreError>;

    /// Decides a pending revision (`Applied` or `Refused`, with its problems) and records the
    /// deployments it causes, in one transaction. Deciding one already decided records nothing
    /// and returns no ids; automatic deploys of paused apps are held back as for a push.
    async fn decide_revision(
        &self,
        source: &str,
        sha: &str,
        state: RevisionState,
        detail: Option<String>,
        deployments: Vec<Enqueue>,
    ) -> Result<Vec<DeploymentId>, StoreError>;

    /// Records a `pull_request` delivery with the previews it asks for, in one transaction;
    /// a preview already recorded (same source, number and head) is not recorded again.
    async fn record_preview_delivery(
        &self,
        delivery: DeliveryRecord,
        previews: Vec<PreviewRequest>,
    ) -> Result<DeliveryOutcome, StoreError>;

    /// Previews still to post, oldest first, with their sequence number and attempts so far.
    async fn pending_previews(
        &self,
        limit: usize,
    ) -> Result<Vec<(i64, PreviewRequest, u32)>, StoreError>;

    /// Marks a preview posted (`done`), given up (`failed`), or tried once more (`pending`).
    async fn finish_preview(
        &self,
        seq: i64,
        state: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError>;

    /// The newest applied revision of a source: the one in force.
    async fn applied_revision(&self, source: &str) -> Result<Option<String>, StoreError>;

    /// The newest revisions of a source, newest first.
    async fn revisions(
        &self,
        source: &str,
        limit: usize,
    ) -> Result<Vec<SourceRevision>, StoreError>;

    /// Queues one deployment (API, CLI, chat), superseding queued ones of the same app.
    async fn enqueue(&self, e: Enqueue) -> Result<DeploymentId, StoreError>;

    /// Queues a deployment, pauses its app when `pause` is given, and audits it, all in one
    /// transaction (a rollback: a push can never land between its enqueue and its pause).
    /// The audit's detail is prefixed with `deployment #ID `.
    async fn enqueue_audited(
        &self,
        e: Enqueue,
        pause: Option<Paused>,
        audit: AuditRecord,
    ) -> Result<DeploymentId, StoreError>;

    /// Claims up to `limit` deployments to start: for each app with nothing running, its
    /// newest queued deployment becomes `running` and older queued ones `superseded`.
    async fn claim(&self, limit: usize) -> Result<Vec<Deployment>, StoreError> {
        self.claim_up_to(limit, DeploymentId::MAX).await
    }

    /// [`Store::claim`] among deployments with ids up to `up_to`: those the queue's gate has
    /// looked at (one queued after that look waits for the next).
    async fn claim_up_to(
        &self,
        limit: usize,
        up_to: DeploymentId,
    ) -> Result<Vec<Deployment>, StoreError>;

    /// Deployments left `running` (by a crash or a shutdown), oldest first.
    async fn running(&self) -> Result<Vec<Deployment>, StoreError>;

    /// Marks a step running and returns its attempt number (1 for the first run).
    async fn step_started(&self, id: DeploymentId, index: u32) -> Result<u32, StoreError>;

    /// Appends to a running step's log (so a crash keeps what was printed).
    async fn step_log(&self, id: DeploymentId, index: u32, log: String) -> Result<(), StoreError>;

    /// Records a Discord interaction id; `false` when it was recorded before (a replay).
    async fn first_interaction(&self, id: &str) -> Result<bool, StoreError>;

    /// Records that a step's attempt failed transiently and when it runs again; the step
    /// stays `running`.
    async fn step_retrying(
        &self,
        id: DeploymentId,
        index: u32,
        retry: StepRetry,
    ) -> Result<(), StoreError>;

    async fn step_finished(
        &self,
        id: DeploymentId,
        index: u32,
        end: StepEnd,
    ) -> Result<(), StoreError>;

    /// Records the exact commit a ref resolved to.
    /// Records the commit a deployment resolved, and when it was made (lead time).
    async fn set_sha(
        &self,
        id: DeploymentId,
        sha: &str,
        committed_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError>;

    /// Ends a deployment. Only a non-terminal deployment changes.
    async fn finish(
        &self,
        id: DeploymentId,
        state: DeploymentState,
        reason: Option<String>,
    ) -> Result<(), StoreError>;

    /// Records (or replaces) the release a deployment produced.
    async fn record_release(&self, release: Release) -> Result<(), StoreError>;

    async fn releases(&self, app: &str, limit: usize) -> Result<Vec<Release>, StoreError>;

    /// The release a deployment recorded, if any.
    async fn release_of(&self, id: DeploymentId) -> Result<Option<Release>, StoreError>;

    /// Releases of deployments that succeeded, newest first, with their deployments.
    async fn good_releases(
        &self,
        app: &str,
        limit: usize,
    ) -> Result<Vec<(Deployment, Release)>, StoreError>;

    async fn deployment(
        &self,
        id: DeploymentId,
        with_logs: bool,
    ) -> Result<Option<Deployment>, StoreError>;

    /// Newest first.
    async fn deployments(
        &self,
        app: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError>;

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;

    async fn deliveries_count(&self) -> Result<u64, StoreError>;

    /// Pauses automatic deploys of an app (replacing an earlier pause's reason).
    async fn pause(&self, paused: Paused) -> Result<(), StoreError>;

    /// Lifts a pause; `false` when the app was not paused.
    async fn resume(&self, app: &str) -> Result<bool, StoreError>;

    async fn paused(&self) -> Result<Vec<Paused>, StoreError>;

    /// What a reporter recorded for a deployment (e.g. the Discord message id).
    async fn reporter_state(
        &self,
        id: DeploymentId,
        reporter: &str,
    ) -> Result<Option<String>, StoreError>;

    async fn set_reporter_state(
        &self,
        id: DeploymentId,
        reporter: &str,
        value: &str,
    ) -> Result<(), StoreError>;

    /// Moves after every committed write: reporters wait on it instead of polling blindly.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Deployments whose reportable state (state, sha, reason, a step's state or outcome)
    /// changed after revision `after`, with their current revision, oldest change first.
    async fn changed_since(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(DeploymentId, i64)>, StoreError>;

    /// The highest revision a reporter has handled (0 for a new reporter).
    async fn report_cursor(&self, reporter: &str) -> Result<i64, StoreError>;

    /// Starts a reporter that has never run at the store's current revision, so it does not
    /// report history it was not configured for. Returns the cursor.
    async fn init_report_cursor(&self, reporter: &str) -> Result<i64, StoreError>;

    /// Pending reports (of one reporter and/or one deployment, or all; failures only when
    /// `failing`), at most `limit`, by deployment.
    async fn pending_reports(
        &self,
        reporter: Option<&str>,
        deployment: Option<DeploymentId>,
        failing: bool,
        limit: usize,
    ) -> Result<Vec<PendingReport>, StoreError>;

    /// Records one reporter pass atomically (rows cleared, rows owed, the cursor).
    async fn record_report_pass(&self, reporter: &str, pass: ReportPass) -> Result<(), StoreError>;

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError>;

    /// Deployments that have not started: queued, or waiting for their deploy window.
    async fn not_started(&self) -> Result<Vec<Deployment>, StoreError>;

    /// Moves a deployment that has not started to `state` (`queued`, `waiting` or
    /// `awaiting_approval`) with `reason`; a no-op when it is already so, or has started or
    /// ended.
    async fn set_gate(
        &self,
        id: DeploymentId,
        state: DeploymentState,
        reason: Option<String>,
    ) -> Result<(), StoreError>;

    /// The approvals and rejections recorded for a deployment, oldest first.
    async fn approvals(&self, id: DeploymentId)
        -> Result<Vec<crate::domain::Approval>, StoreError>;

    /// Records one person's verdict on a deployment that has not started, with the audit
    /// record, in one transaction; `false` when that person had already given one (the first
    /// stands) or the deployment had started or ended.
    async fn record_approval(
        &self,
        id: DeploymentId,
        approval: crate::domain::Approval,
        audit: AuditRecord,
    ) -> Result<bool, StoreError>;

    /// Lets a deployment that has not started begin outside its windows (`actor` recorded on
    /// it), with the audit record, in one transaction; `false` when it had started or ended.
    async fn override_window(
        &self,
        id: DeploymentId,
        audit: AuditRecord,
    ) -> Result<bool, StoreError>;

    /// What DORA's figures need of every deployment that ended at or after `since`, plus the
    /// promotion sources they name.
    async fn dora_rows(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::plan::dora::Row>, StoreError>;

    /// Records what a drift check of `app` found against the release of deployment
    /// `release` (`found`: its fingerprint and readable diff; `None`: no drift). A new (or
    /// different) drift and a cleared one are audited and owe a chat notice, in the same
    /// transaction; the same drift seen again changes nothing. `None`, recording nothing, when
    /// a deployment of the app was queued, running, created or finished since `read_since`
    /// (what was read may be a deployment's passing state).
    async fn record_drift(
        &self,
        app: &str,
        release: DeploymentId,
        found: Option<(String, String)>,
        read_since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<crate::domain::drift::DriftChange>, StoreError>;

    /// Every app's recorded drift, by app.
    async fn drifts(&self) -> Result<Vec<crate::domain::drift::Drift>, StoreError>;

    /// One app's recorded drift.
    async fn drift_of(&self, app: &str) -> Result<Option<crate::domain::drift::Drift>, StoreError>;

    /// Queues a self-heal of a drifted app, unless by then the app is paused or held or has a
    /// deployment queued or running (`None`); records the attempt, when the next may start,
    /// the audit record and a notice, in one transaction.
    async fn enqueue_heal(
        &self,
        e: Enqueue,
        next_heal_at: chrono::DateTime<chrono::Utc>,
        audit: AuditRecord,
    ) -> Result<Option<DeploymentId>, StoreError>;

    /// Whether a deployment of `app` is queued or running.
    async fn active(&self, app: &str) -> Result<bool, StoreError>;

    /// Drift notices not yet posted, oldest first.
    async fn drift_notices(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::domain::drift::DriftNotice>, StoreError>;

    /// Marks a drift notice posted.
    async fn drift_notice_posted(&self, seq: i64) -> Result<(), StoreError>;

    /// Newest first.
    async fn audits(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Shared by the store's and its users' unit tests.
#[cfg(test)]
pub mod testing {
    use crate::domain::{Enqueue, NewDeployment, StepKind, Trigger};

    /// A push deployment of `app` at a fixed sha, fetch and report only.
    pub fn enqueue(app: &str) -> Enqueue {
        Enqueue {
            deployment: NewDeployment {
                app: app.into(),
                sha: Some("a".repeat(40)),
                git_ref: "refs/heads/main".into(),
                trigger: Trigger::Push,
                actor: "octo".into(),
                delivery_id: None,
                restore_from: None,
                images_from: None,
                spec: crate::manifests::scaffold_app("x", "x/x", "main").spec,
                manifests: Default::default(),
            },
            steps: vec![StepKind::FetchSource, StepKind::Report],
            refused: None,
        }
    }
}
