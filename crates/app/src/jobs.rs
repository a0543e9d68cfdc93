//! Background jobs: a feed uploaded over HTTP is queued (202) and ingested by whichever
//! node claims it; the submitter polls its status. Jobs are rows in the database, so
//! several nodes sharing one PostgreSQL never run the same job twice.

use crate::feeds::FeedFormat;
use crate::staff::ApiClient;
use crate::{Actor, App, AppError, Result};
use lifecert_crypto::Field;
use serde::Serialize;

/// Uploads above this are refused: a larger feed goes through `lifecert feed ingest`.
pub const MAX_FEED_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    /// queued, running, done or failed
    pub status: String,
    pub source: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The feed summary once done.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

fn view(j: lifecert_store::JobRow) -> JobView {
    JobView {
        id: j.id,
        kind: j.kind,
        status: j.status,
        source: j.source,
        created_at: j.created_at,
        finished_at: j.finished_at,
        summary: j.result.and_then(|r| serde_json::from_str(&r).ok()),
        error: j.error,
    }
}

impl App {
    /// Queues an uploaded feed from an integration with the `feeds` scope.
    pub async fn queue_feed(
        &self,
        client: &ApiClient,
        source: &str,
        format: FeedFormat,
        body: &[u8],
    ) -> Result<JobView> {
        client.require_scope("feeds")?;
        let source = self.source(source)?;
        if body.is_empty() {
            return Err(AppError::invalid("body", "the feed is empty"));
        }
        // The upload holds ID numbers and names: stored encrypted like every other field.
        let payload = self.keys.encrypt(Field::Other, body);
        let actor = Actor::Integration(client.name.clone());
        let format_name = match format {
            FeedFormat::Csv => "csv",
            FeedFormat::Jsonl => "jsonl",
        };
        let mut tx = self.store.begin_write().await?;
        let id = tx
            .queue_job(
                "feed",
                &source.name,
                format_name,
                &payload,
                &actor.label(),
                &self.now_string(),
            )
            .await?;
        self.audit(
            &mut tx,
            &actor,
            "feed.queued",
            None,
            serde_json::json!({"job_id": id, "source": source.name, "bytes": body.len()}),
        );
        tx.commit().await?;
        self.job_of(client, id).await
    }

    /// Runs the oldest queued job, if any; returns its id. A failing feed marks the job
    /// failed with its message; nothing it had not committed is kept.
    pub async fn run_next_job(&self) -> Result<Option<i64>> {
        let Some((job, payload)) = self.store.claim_job(&self.now_string()).await? else {
            return Ok(None);
        };
        let outcome = async {
            let source = self.source(&job.source)?;
            let bytes = self.keys.decrypt(Field::Other, &payload)?;
            let format = FeedFormat::parse(&job.format)?;
            self.ingest_feed_bytes(&source, bytes, format).await
        }
        .await;
        let now = self.now_string();
        match outcome {
            Ok(summary) => {
                let result = serde_json::to_string(&summary).unwrap_or_default();
                self.store
                    .finish_job(job.id, Some(&result), None, &now)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "feed job failed");
                let message = match &e {
                    AppError::Invalid { .. } | AppError::NotFound(_) | AppError::Io(_) => {
                        e.to_string()
                    }
                    _ => "the feed could not be processed; the error is logged".to_string(),
                };
                self.store
                    .finish_job(job.id, None, Some(&message), &now)
                    .await?;
            }
        }
        Ok(Some(job.id))
    }

    /// Runs queued jobs until none is left (a worker's loop; tests drain with it).
    pub async fn run_pending_jobs(&self) -> Result<usize> {
        let mut n = 0;
        while self.run_next_job().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// A job, for the integration that submitted it.
    pub async fn job_of(&self, client: &ApiClient, id: i64) -> Result<JobView> {
        let label = Actor::Integration(client.name.clone()).label();
        let job = self
            .store
            .job(id)
            .await?
            .filter(|j| j.created_by == label)
            .ok_or_else(|| AppError::NotFound("job not found".to_string()))?;
        Ok(view(job))
    }
}
