//! `col jobs …`: list, show, retry and cancel the store's jobs.

use colstore_domain::ports::{JobFilter, JobId, JobState};
use serde_json::json;

use super::{Ctx, io};
use crate::cli::JobsCommand;
use crate::error::{CliError, CliResult};
use crate::output::{human_time, table, to_value};

/// A state named on the command line; a wrong one is a usage error (exit 2).
fn job_state(s: &str) -> CliResult<JobState> {
    s.parse::<JobState>().map_err(|e| CliError::new(e.to_string()).code(2).hint("use pending, running, done, dead or cancelled"))
}

pub async fn jobs(ctx: &Ctx, cmd: JobsCommand) -> CliResult {
    let store = ctx.open().await?;
    let queue = store.queue();
    let qerr = |e: colstore_domain::ports::QueueError| {
        let hint = match &e {
            colstore_domain::ports::QueueError::NotFound(_) => Some("list jobs with `col jobs`"),
            colstore_domain::ports::QueueError::InvalidState { .. } => Some("`col jobs show ID` shows the job's state"),
            _ => None,
        };
        let err = CliError::new(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    };
    match cmd {
        JobsCommand::List { state, limit } => {
            let states = state.as_deref().map(job_state).transpose()?.into_iter().collect();
            let jobs = queue.list(JobFilter { states, kind: None, limit: Some(limit) }).await.map_err(qerr)?;
            ctx.out.json_value(&json!({ "jobs": to_value(&jobs) })).map_err(io)?;
            if jobs.is_empty() {
                ctx.out.line("No jobs.").map_err(io)?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.spec.kind.clone(),
                        j.state.to_string(),
                        j.attempts.to_string(),
                        human_time(j.updated_at),
                        j.spec.dedup_key.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            ctx.out.data(table(&["ID", "KIND", "STATE", "ATTEMPTS", "UPDATED", "KEY"], &rows)).map_err(io)?;
        }
        JobsCommand::Show { id } => {
            let j = queue.get(JobId(id)).await.map_err(qerr)?;
            ctx.out.json_value(&to_value(&j)).map_err(io)?;
            let mut text = format!(
                "id:        {}\nkind:      {}\nstate:     {}\nattempts:  {} of {}\ncreated:   {}\nupdated:   {}\npayload:   {}",
                j.id,
                j.spec.kind,
                j.state,
                j.attempts,
                j.spec.max_attempts,
                human_time(j.created_at),
                human_time(j.updated_at),
                j.spec.payload
            );
            if let Some(p) = &j.progress {
                text.push_str(&format!("\nprogress:  {p}"));
            }
            for (i, e) in j.errors.iter().enumerate() {
                text.push_str(&format!("\nerror {}:   {e}", i + 1));
            }
            ctx.out.data(text).map_err(io)?;
        }
        JobsCommand::Retry { id } => {
            colstore_app::retry_job(&*queue, JobId(id)).await.map_err(qerr)?;
            ctx.out.json_value(&json!({ "id": id, "state": "pending" })).map_err(io)?;
            ctx.out.line(format!("Job {id} is pending again.")).map_err(io)?;
        }
        JobsCommand::Cancel { id } => {
            colstore_app::cancel_job(&*queue, JobId(id)).await.map_err(qerr)?;
            ctx.out.json_value(&json!({ "id": id, "state": "cancelled" })).map_err(io)?;
            ctx.out.line(format!("Job {id} is cancelled.")).map_err(io)?;
        }
    }
    Ok(())
}
