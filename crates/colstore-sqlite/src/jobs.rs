//! The `JobQueue` implementation: durable jobs with leases and fencing tokens in the `jobs` table (PRODUCT §6).
//!
//! - `claim` is one `UPDATE … WHERE id IN (SELECT … LIMIT ?) RETURNING …`: due pending jobs and running jobs whose lease
//!   ran out are taken in one atomic step, each with `token + 1`, so a worker whose lease expired can no longer
//!   heartbeat, complete or fail the job once another worker took it over.
//! - At most one *pending* job per dedup key (a partial unique index). A retry that would create a second one
//!   (`fail`, `release_worker`) cancels the job instead, because the pending job does the same work; `retry` refuses.
//! - `complete_many` checks every lease's worker and token in one `UPDATE … RETURNING` per 1000 leases, all in one
//!   `BEGIN IMMEDIATE` transaction: a batch costs one durable commit (`synchronous = FULL`), not one per job.
//! - Every write runs in `BEGIN IMMEDIATE`; every time decision reads the repository's `Clock`.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use colstore_domain::Timestamp;
use colstore_domain::ports::{BoxError, Job, JobFilter, JobId, JobQueue, JobSpec, JobState, Lease, QueueError, RepoError, WorkerId};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, sqlite::SqliteRow};

use crate::{SqliteRepo, map_err};

/// Leases per statement of `complete_many` (four bound values each, well under SQLite's limit of 32 766).
const COMPLETE_CHUNK: usize = 1000;

const JOB_COLUMNS: &str = "id, kind, dedup_key, payload, state, attempts, max_attempts, run_after, worker, token, lease_expires, errors, progress, created_at, updated_at";

/// The cause of a database failure, with the semantic wording of [`map_err`] (busy, read-only, disk full).
pub(crate) fn cause(e: sqlx::Error) -> BoxError {
    match map_err(e) {
        RepoError::Backend { source, .. } => source,
        other => Box::new(other),
    }
}

fn qerr(e: sqlx::Error) -> QueueError {
    QueueError::Backend { backend: "sqlite", source: cause(e) }
}

fn corrupt(what: impl std::fmt::Display) -> QueueError {
    QueueError::Backend { backend: "sqlite", source: format!("bad job row in database: {what}").into() }
}

pub(crate) fn state_str(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Dead => "dead",
        JobState::Cancelled => "cancelled",
    }
}

fn parse_state(s: &str) -> Result<JobState, QueueError> {
    Ok(match s {
        "pending" => JobState::Pending,
        "running" => JobState::Running,
        "done" => JobState::Done,
        "dead" => JobState::Dead,
        "cancelled" => JobState::Cancelled,
        other => return Err(corrupt(format!("unknown state {other:?}"))),
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A `jobs` row: the job, and its lease columns.
struct StoredJob {
    job: Job,
    worker: Option<String>,
    token: i64,
    lease_expires: Option<i64>,
}

fn job_row(r: &SqliteRow) -> Result<StoredJob, QueueError> {
    let payload: String = r.try_get("payload").map_err(qerr)?;
    let errors: String = r.try_get("errors").map_err(qerr)?;
    let progress: Option<String> = r.try_get("progress").map_err(qerr)?;
    let state: String = r.try_get("state").map_err(qerr)?;
    let count = |c: &str| -> Result<u32, QueueError> {
        let v: i64 = r.try_get(c).map_err(qerr)?;
        u32::try_from(v).map_err(|_| corrupt(format!("{c} = {v}")))
    };
    let job = Job {
        id: JobId(r.try_get("id").map_err(qerr)?),
        spec: JobSpec {
            kind: r.try_get("kind").map_err(qerr)?,
            dedup_key: r.try_get("dedup_key").map_err(qerr)?,
            payload: serde_json::from_str(&payload).map_err(corrupt)?,
            max_attempts: count("max_attempts")?,
            run_after: Some(Timestamp::from_millis(r.try_get("run_after").map_err(qerr)?)),
        },
        state: parse_state(&state)?,
        attempts: count("attempts")?,
        errors: serde_json::from_str(&errors).map_err(corrupt)?,
        progress: progress.map(|p| serde_json::from_str(&p)).transpose().map_err(corrupt)?,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(qerr)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(qerr)?),
    };
    Ok(StoredJob {
        job,
        worker: r.try_get("worker").map_err(qerr)?,
        token: r.try_get("token").map_err(qerr)?,
        lease_expires: r.try_get("lease_expires").map_err(qerr)?,
    })
}

fn lease_of(row: StoredJob) -> Result<Lease, QueueError> {
    let id = row.job.id;
    match (row.worker, row.lease_expires) {
        (Some(w), Some(exp)) => Ok(Lease { job: row.job, worker: WorkerId(w), token: row.token, expires_at: Timestamp::from_millis(exp) }),
        _ => Err(corrupt(format!("running job {id} has no lease"))),
    }
}

/// Inserts a job unless a pending job with the same dedup key exists; returns the id of the one that is pending.
pub(crate) async fn enqueue_in(conn: &mut SqliteConnection, spec: &JobSpec, now: Timestamp) -> Result<JobId, sqlx::Error> {
    let run_after = spec.run_after.unwrap_or(now).as_millis();
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, dedup_key, payload, state, attempts, max_attempts, run_after, token, errors, created_at, updated_at) \
         VALUES (?, ?, ?, 'pending', 0, ?, ?, 0, '[]', ?, ?) ON CONFLICT (dedup_key) WHERE state = 'pending' DO NOTHING RETURNING id",
    )
    .bind(spec.kind.clone())
    .bind(spec.dedup_key.clone())
    .bind(spec.payload.to_string())
    .bind(i64::from(spec.max_attempts))
    .bind(run_after)
    .bind(now.as_millis())
    .bind(now.as_millis())
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => Ok(JobId(id)),
        None => sqlx::query_scalar("SELECT id FROM jobs WHERE dedup_key = ? AND state = 'pending'")
            .bind(spec.dedup_key.clone())
            .fetch_one(&mut *conn)
            .await
            .map(JobId),
    }
}

impl SqliteRepo {
    /// The workers that hold running jobs (whether their leases expired or not), in name order, so that a process
    /// starting up can free the jobs of workers that no longer run with [`JobQueue::release_worker`].
    ///
    /// # Errors
    /// `Backend` when the database cannot be read.
    pub async fn running_workers(&self) -> Result<Vec<WorkerId>, QueueError> {
        let workers: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT worker FROM jobs WHERE state = 'running' AND worker IS NOT NULL ORDER BY worker")
                .fetch_all(self.queue_pool())
                .await
                .map_err(qerr)?;
        Ok(workers.into_iter().map(WorkerId).collect())
    }

    /// Why a fenced update matched no row: the job is missing, or the lease is no longer this one.
    async fn lost(&self, id: JobId) -> QueueError {
        match sqlx::query_scalar::<_, i64>("SELECT 1 FROM jobs WHERE id = ?").bind(id.0).fetch_optional(self.queue_pool()).await {
            Ok(Some(_)) => QueueError::LeaseLost(id),
            Ok(None) => QueueError::NotFound(id),
            Err(e) => qerr(e),
        }
    }

    async fn job_state(conn: &mut SqliteConnection, id: JobId) -> Result<Option<(JobState, Option<String>)>, QueueError> {
        let row =
            sqlx::query("SELECT state, dedup_key FROM jobs WHERE id = ?").bind(id.0).fetch_optional(&mut *conn).await.map_err(qerr)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let state: String = r.try_get(0).map_err(qerr)?;
                Ok(Some((parse_state(&state)?, r.try_get(1).map_err(qerr)?)))
            }
        }
    }

    /// The id of another pending job with this dedup key, if any.
    async fn pending_duplicate(conn: &mut SqliteConnection, id: JobId, dedup_key: Option<&str>) -> Result<Option<i64>, QueueError> {
        let Some(k) = dedup_key else { return Ok(None) };
        sqlx::query_scalar("SELECT id FROM jobs WHERE dedup_key = ? AND state = 'pending' AND id <> ?")
            .bind(k.to_owned())
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(qerr)
    }
}

/// Jobs in the store's database. See the module documentation for the details of leases and dedup keys.
///
/// A stored job's `spec.run_after` is always `Some`: when it is (next) due — the enqueue time when none was given,
/// the retry time after a failure.
#[async_trait]
impl JobQueue for SqliteRepo {
    async fn enqueue(&self, spec: JobSpec) -> Result<JobId, QueueError> {
        let now = self.clock.now();
        let mut tx = self.begin_queue().await.map_err(qerr)?;
        let id = enqueue_in(&mut tx, &spec, now).await.map_err(qerr)?;
        tx.commit().await.map_err(qerr)?;
        Ok(id)
    }

    async fn claim(&self, worker: &WorkerId, kinds: Vec<String>, max: usize, lease: Duration) -> Result<Vec<Lease>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let expires = now.plus_millis(millis(lease));
        let kinds_sql = if kinds.is_empty() { String::new() } else { format!(" AND kind IN ({})", vec!["?"; kinds.len()].join(",")) };
        // Two index-ordered candidate lists, each cut at `max` before they are merged: due pending jobs (walked in
        // `jobs_claim` order) and running jobs whose lease expired. An `OR` in one WHERE would make SQLite collect
        // and sort every due job on each claim.
        let sql = format!(
            "UPDATE jobs SET state = 'running', worker = ?, token = token + 1, lease_expires = ?, attempts = attempts + 1, updated_at = ? \
             WHERE id IN (SELECT id FROM ( \
                 SELECT id, run_after FROM (SELECT id, run_after FROM jobs WHERE state = 'pending' AND run_after <= ?{kinds_sql} \
                     ORDER BY run_after, id LIMIT ?) \
                 UNION ALL \
                 SELECT id, run_after FROM (SELECT id, run_after FROM jobs WHERE state = 'running' AND lease_expires < ?{kinds_sql} \
                     ORDER BY run_after, id LIMIT ?) \
             ) ORDER BY run_after, id LIMIT ?) RETURNING {JOB_COLUMNS}"
        );
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let mut q =
            sqlx::query(AssertSqlSafe(sql)).bind(worker.0.clone()).bind(expires.as_millis()).bind(now.as_millis()).bind(now.as_millis());
        for k in &kinds {
            q = q.bind(k.clone());
        }
        q = q.bind(limit).bind(now.as_millis());
        for k in kinds {
            q = q.bind(k);
        }
        q = q.bind(limit).bind(limit);
        // One statement, so no explicit transaction: a writing statement takes the write lock when it starts (as
        // `BEGIN IMMEDIATE` would, waiting on the busy timeout), and saves the two round trips of BEGIN and COMMIT.
        let rows = q.fetch_all(self.queue_pool()).await.map_err(qerr)?;
        let mut leases = rows.iter().map(|r| job_row(r).and_then(lease_of)).collect::<Result<Vec<_>, _>>()?;
        // RETURNING has no defined order.
        leases.sort_by_key(|l| (l.job.spec.run_after, l.job.id));
        Ok(leases)
    }

    async fn heartbeat(&self, lease: &Lease, progress: Option<serde_json::Value>, extend: Duration) -> Result<Lease, QueueError> {
        let now = self.clock.now();
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET lease_expires = ?, progress = coalesce(?, progress), updated_at = ? \
             WHERE id = ? AND state = 'running' AND worker = ? AND token = ? RETURNING {JOB_COLUMNS}"
        )))
        .bind(now.plus_millis(millis(extend)).as_millis())
        .bind(progress.map(|p| p.to_string()))
        .bind(now.as_millis())
        .bind(lease.job.id.0)
        .bind(lease.worker.0.clone())
        .bind(lease.token)
        .fetch_optional(self.queue_pool())
        .await
        .map_err(qerr)?;
        match row {
            Some(r) => lease_of(job_row(&r)?),
            None => Err(self.lost(lease.job.id).await),
        }
    }

    async fn complete(&self, lease: &Lease) -> Result<(), QueueError> {
        let now = self.clock.now();
        let n = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires = NULL, updated_at = ? WHERE id = ? AND state = 'running' AND worker = ? AND token = ?",
        )
        .bind(now.as_millis())
        .bind(lease.job.id.0)
        .bind(lease.worker.0.clone())
        .bind(lease.token)
        .execute(self.queue_pool())
        .await
        .map_err(qerr)?
        .rows_affected();
        if n == 0 { Err(self.lost(lease.job.id).await) } else { Ok(()) }
    }

    async fn complete_many(&self, leases: &[Lease]) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut tx = self.begin_queue().await.map_err(qerr)?;
        // One statement per chunk: `id IN (…)` finds the rows by primary key (`+state` keeps SQLite from walking
        // every running job through `jobs_claim` instead), the row value checks each lease's worker and fencing
        // token. RETURNING says which leases were valid.
        let mut completed: HashSet<(i64, String, i64)> = HashSet::with_capacity(leases.len());
        for chunk in leases.chunks(COMPLETE_CHUNK) {
            let sql = format!(
                "UPDATE jobs SET state = 'done', lease_expires = NULL, updated_at = ? \
                 WHERE id IN ({}) AND +state = 'running' AND (id, worker, token) IN (VALUES {}) RETURNING id, worker, token",
                vec!["?"; chunk.len()].join(","),
                vec!["(?, ?, ?)"; chunk.len()].join(",")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now.as_millis());
            for l in chunk {
                q = q.bind(l.job.id.0);
            }
            for l in chunk {
                q = q.bind(l.job.id.0).bind(l.worker.0.clone()).bind(l.token);
            }
            for r in q.fetch_all(&mut *tx).await.map_err(qerr)? {
                completed.insert((r.try_get(0).map_err(qerr)?, r.try_get(1).map_err(qerr)?, r.try_get(2).map_err(qerr)?));
            }
        }
        // Why the others were refused: the job exists (stale lease) or not. Completed jobs exist, of course.
        let mut existing: HashSet<i64> = completed.iter().map(|(id, _, _)| *id).collect();
        let stale: Vec<i64> = leases.iter().map(|l| l.job.id.0).filter(|id| !existing.contains(id)).collect();
        for chunk in stale.chunks(COMPLETE_CHUNK) {
            let sql = format!("SELECT id FROM jobs WHERE id IN ({})", vec!["?"; chunk.len()].join(","));
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            existing.extend(q.fetch_all(&mut *tx).await.map_err(qerr)?);
        }
        tx.commit().await.map_err(qerr)?;
        // In order: a lease completes once; a second entry for it reports the lease spent, as `complete` would.
        Ok(leases
            .iter()
            .map(|l| {
                let id = l.job.id;
                if completed.remove(&(id.0, l.worker.0.clone(), l.token)) {
                    Ok(())
                } else if existing.contains(&id.0) {
                    Err(QueueError::LeaseLost(id))
                } else {
                    Err(QueueError::NotFound(id))
                }
            })
            .collect())
    }

    async fn fail(&self, lease: &Lease, error: String, retry_at: Option<Timestamp>) -> Result<JobState, QueueError> {
        let now = self.clock.now();
        let id = lease.job.id;
        let mut tx = self.begin_queue().await.map_err(qerr)?;
        let row = sqlx::query(
            "SELECT dedup_key, attempts, max_attempts FROM jobs WHERE id = ? AND state = 'running' AND worker = ? AND token = ?",
        )
        .bind(id.0)
        .bind(lease.worker.0.clone())
        .bind(lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(qerr)?;
        let Some(row) = row else {
            drop(tx);
            return Err(self.lost(id).await);
        };
        let dedup_key: Option<String> = row.try_get(0).map_err(qerr)?;
        let (attempts, max_attempts): (i64, i64) = (row.try_get(1).map_err(qerr)?, row.try_get(2).map_err(qerr)?);
        let state = if retry_at.is_none() || attempts >= max_attempts {
            JobState::Dead
        } else if Self::pending_duplicate(&mut tx, id, dedup_key.as_deref()).await?.is_some() {
            JobState::Cancelled
        } else {
            JobState::Pending
        };
        let run_after = if state == JobState::Pending { retry_at.map(|t| t.as_millis()) } else { None };
        sqlx::query(
            "UPDATE jobs SET state = ?, errors = json_insert(errors, '$[#]', ?), run_after = coalesce(?, run_after), \
             lease_expires = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(state_str(state))
        .bind(error)
        .bind(run_after)
        .bind(now.as_millis())
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(qerr)?;
        tx.commit().await.map_err(qerr)?;
        Ok(state)
    }

    async fn cancel(&self, id: JobId) -> Result<(), QueueError> {
        let now = self.clock.now();
        let mut tx = self.begin_queue().await.map_err(qerr)?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', lease_expires = NULL, updated_at = ? WHERE id = ? AND state IN ('pending', 'running')",
        )
        .bind(now.as_millis())
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(qerr)?
        .rows_affected();
        if n == 0 {
            match Self::job_state(&mut tx, id).await? {
                None => return Err(QueueError::NotFound(id)),
                // Cancelling twice is harmless.
                Some((JobState::Cancelled, _)) => {}
                Some((state, _)) => {
                    return Err(QueueError::InvalidState { id, state, detail: "only pending or running jobs can be cancelled".into() });
                }
            }
        }
        tx.commit().await.map_err(qerr)?;
        Ok(())
    }

    async fn retry(&self, id: JobId) -> Result<(), QueueError> {
        let now = self.clock.now();
        let mut tx = self.begin_queue().await.map_err(qerr)?;
        let (state, dedup_key) = Self::job_state(&mut tx, id).await?.ok_or(QueueError::NotFound(id))?;
        if !matches!(state, JobState::Dead | JobState::Cancelled) {
            return Err(QueueError::InvalidState { id, state, detail: "only dead or cancelled jobs can be retried".into() });
        }
        if let Some(other) = Self::pending_duplicate(&mut tx, id, dedup_key.as_deref()).await? {
            return Err(QueueError::InvalidState { id, state, detail: format!("job {other} with the same dedup key is already pending") });
        }
        sqlx::query("UPDATE jobs SET state = 'pending', attempts = 0, run_after = ?, lease_expires = NULL, updated_at = ? WHERE id = ?")
            .bind(now.as_millis())
            .bind(now.as_millis())
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(qerr)?;
        tx.commit().await.map_err(qerr)?;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Job, QueueError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?")))
            .bind(id.0)
            .fetch_optional(self.queue_pool())
            .await
            .map_err(qerr)?
            .ok_or(QueueError::NotFound(id))?;
        Ok(job_row(&row)?.job)
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>, QueueError> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
        if !filter.states.is_empty() {
            sql.push_str(&format!(" AND state IN ({})", vec!["?"; filter.states.len()].join(",")));
        }
        if filter.kind.is_some() {
            sql.push_str(" AND kind = ?");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for s in &filter.states {
            q = q.bind(state_str(*s));
        }
        if let Some(k) = filter.kind {
            q = q.bind(k);
        }
        let rows =
            q.bind(filter.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX))).fetch_all(self.queue_pool()).await.map_err(qerr)?;
        rows.iter().map(|r| job_row(r).map(|r| r.job)).collect()
    }

    async fn release_worker(&self, worker: &WorkerId) -> Result<u64, QueueError> {
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_queue().await.map_err(qerr)?;
        // A released job that would become a second pending job with its dedup key is superseded: cancel it. Of two
        // running jobs of this worker with one key, the newer one goes back to pending.
        let superseded = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', lease_expires = NULL, updated_at = ? \
             WHERE state = 'running' AND worker = ? AND dedup_key IS NOT NULL AND ( \
               EXISTS (SELECT 1 FROM jobs p WHERE p.state = 'pending' AND p.dedup_key = jobs.dedup_key) \
               OR EXISTS (SELECT 1 FROM jobs o WHERE o.state = 'running' AND o.worker = jobs.worker AND o.dedup_key = jobs.dedup_key AND o.id > jobs.id))",
        )
        .bind(now)
        .bind(worker.0.clone())
        .execute(&mut *tx)
        .await
        .map_err(qerr)?
        .rows_affected();
        let released =
            sqlx::query("UPDATE jobs SET state = 'pending', lease_expires = NULL, updated_at = ? WHERE state = 'running' AND worker = ?")
                .bind(now)
                .bind(worker.0.clone())
                .execute(&mut *tx)
                .await
                .map_err(qerr)?
                .rows_affected();
        tx.commit().await.map_err(qerr)?;
        Ok(superseded + released)
    }
}
