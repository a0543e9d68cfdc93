//! Feed records: every record received from another department, once per source and
//! record id, with what it was matched to.

use crate::records::{in_list, value_groups};
use crate::{Result, WriteTx};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewFeedRecord<'a> {
    pub source: &'a str,
    pub record_id: &'a str,
    pub kind: &'a str,
    pub recipient_id: Option<i64>,
    pub class: &'a str,
    pub event_date: Option<&'a str>,
    pub weight_milli: i64,
    pub void_of: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct FeedRecordRow {
    pub id: i64,
    pub kind: String,
    pub recipient_id: Option<i64>,
    pub event_date: Option<String>,
    pub voided: bool,
}

impl WriteTx {
    /// Stores a record; `None` when this source sent the same record id before.
    pub async fn insert_feed_record(
        &mut self,
        r: &NewFeedRecord<'_>,
        now: &str,
    ) -> Result<Option<i64>> {
        let sql = self.sql(
            "INSERT INTO feed_records (source, record_id, kind, recipient_id, class, event_date, weight_milli, void_of, voided, received_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (source, record_id) DO NOTHING RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(r.source)
            .bind(r.record_id)
            .bind(r.kind)
            .bind(r.recipient_id)
            .bind(r.class)
            .bind(r.event_date)
            .bind(r.weight_milli)
            .bind(r.void_of)
            .bind(now)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn feed_record(
        &mut self,
        source: &str,
        record_id: &str,
    ) -> Result<Option<FeedRecordRow>> {
        let sql = self.sql(
            "SELECT id, kind, recipient_id, event_date, voided FROM feed_records WHERE source = ? AND record_id = ?",
        );
        let row = sqlx::query(&sql)
            .bind(source)
            .bind(record_id)
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| {
            Ok(FeedRecordRow {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                recipient_id: r.try_get(2)?,
                event_date: r.try_get(3)?,
                voided: r.try_get::<i64, _>(4)? != 0,
            })
        })
        .transpose()
    }

    pub async fn void_feed_record(&mut self, id: i64) -> Result<()> {
        let sql = self.sql("UPDATE feed_records SET voided = 1 WHERE id = ?");
        sqlx::query(&sql).bind(id).execute(self.conn()).await?;
        Ok(())
    }

    /// The weight (thousandths) of a pensioner's signs of life dated in `[from, to]`,
    /// and the latest of their dates.
    pub async fn life_signs(
        &mut self,
        recipient_id: i64,
        from: &str,
        to: &str,
    ) -> Result<(i64, Option<String>)> {
        let sql = self.sql(
            "SELECT CAST(COALESCE(SUM(weight_milli), 0) AS BIGINT), MAX(event_date) FROM feed_records \
             WHERE recipient_id = ? AND kind = 'life' AND voided = 0 AND event_date >= ? AND event_date <= ?",
        );
        let row = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(from)
            .bind(to)
            .fetch_one(self.conn())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

/// What probabilistic matching needs of a pensioner (the name still encrypted).
#[derive(Debug, Clone)]
pub struct MatchCandidateRow {
    pub id: i64,
    pub name_enc: Vec<u8>,
    pub gender: String,
    pub birth_date: String,
    pub region_code: String,
}

impl crate::Store {
    /// Pensioners not terminated, a page at a time by id.
    pub async fn match_candidates_page(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<MatchCandidateRow>> {
        let sql = self.sql(
            "SELECT id, name_enc, gender, birth_date, region_code FROM recipients WHERE id > ? AND status <> 'terminated' ORDER BY id LIMIT ?",
        );
        let rows = sqlx::query(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MatchCandidateRow {
                    id: r.try_get(0)?,
                    name_enc: r.try_get(1)?,
                    gender: r.try_get(2)?,
                    birth_date: r.try_get(3)?,
                    region_code: r.try_get(4)?,
                })
            })
            .collect()
    }
}

/// A sign of life as the pending-application pass reads it.
#[derive(Debug, Clone)]
pub struct LifeSignRow {
    pub recipient_id: i64,
    pub event_date: String,
    pub weight_milli: i64,
}

/// Rows per multi-row insert: well under SQLite's 32,766 bound variables.
pub const FEED_INSERT_ROWS: usize = 2_000;

impl crate::Store {
    /// Every pensioner's ID-number look-up token, a page at a time by id (for matching a
    /// large feed in memory rather than one query per record).
    pub async fn id_index_page(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let sql = self.sql("SELECT id, id_bidx FROM recipients WHERE id > ? ORDER BY id LIMIT ?");
        let rows = sqlx::query(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

impl WriteTx {
    /// Stores many records at once; returns the record ids that were new. A record id
    /// this source sent before is left as it was: the unique index decides, in the same
    /// statement (asking first with `record_id IN (…)` let PostgreSQL, without statistics
    /// on a young table, scan the whole table for every 2,000 records).
    pub async fn insert_feed_records(
        &mut self,
        records: &[NewFeedRecord<'_>],
        now: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let mut inserted = std::collections::HashSet::with_capacity(records.len());
        for chunk in records.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO feed_records (source, record_id, kind, recipient_id, class, event_date, weight_milli, void_of, voided, received_at) \
                 VALUES {} ON CONFLICT (source, record_id) DO NOTHING RETURNING record_id",
                value_groups(chunk.len(), 10)
            ));
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.source)
                    .bind(r.record_id)
                    .bind(r.kind)
                    .bind(r.recipient_id)
                    .bind(r.class)
                    .bind(r.event_date)
                    .bind(r.weight_milli)
                    .bind(r.void_of)
                    .bind(0_i64)
                    .bind(now);
            }
            for row in q.fetch_all(self.conn()).await? {
                inserted.insert(row.try_get::<String, _>(0)?);
            }
        }
        Ok(inserted)
    }

    /// Lists pensioners whose new signs of life are still to be added up.
    pub async fn add_pending_life(&mut self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO feed_pending_life (recipient_id) VALUES {} ON CONFLICT (recipient_id) DO NOTHING",
                value_groups(chunk.len(), 1)
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Pensioners (up to `limit`) with signs of life still to add up.
    pub async fn pending_life_recipients(&mut self, limit: i64) -> Result<Vec<i64>> {
        let sql =
            self.sql("SELECT recipient_id FROM feed_pending_life ORDER BY recipient_id LIMIT ?");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.conn()).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Takes these pensioners off the pending list.
    pub async fn clear_pending_life(&mut self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "DELETE FROM feed_pending_life WHERE recipient_id IN ({})",
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// The signs of life (not voided) of these pensioners dated on or after `from`.
    pub async fn life_signs_of(&mut self, ids: &[i64], from: &str) -> Result<Vec<LifeSignRow>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "SELECT recipient_id, event_date, weight_milli FROM feed_records \
                 WHERE recipient_id IN ({}) AND kind = 'life' AND voided = 0 AND event_date >= ?",
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.bind(from).fetch_all(self.conn()).await? {
                out.push(LifeSignRow {
                    recipient_id: r.try_get(0)?,
                    event_date: r.try_get(1)?,
                    weight_milli: r.try_get(2)?,
                });
            }
        }
        Ok(out)
    }

    /// Pensioners by id (those that exist), in no particular order.
    pub async fn recipients_by_ids(&mut self, ids: &[i64]) -> Result<Vec<crate::RecipientRow>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "SELECT {} FROM recipients WHERE id IN ({})",
                crate::records::RECIPIENT_COLUMNS,
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.conn()).await? {
                out.push(crate::records::recipient_from_row(&r)?);
            }
        }
        Ok(out)
    }
}

impl WriteTx {
    /// Stores many certifications at once; returns `(certification id, recipient id)`.
    pub async fn insert_certifications(
        &mut self,
        rows: &[crate::CertificationRow],
    ) -> Result<Vec<(i64, i64)>> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO certifications (recipient_id, channel, certified_on, recorded_at, actor, region_code, outcome, reason, evidence) \
                 VALUES {} RETURNING id, recipient_id",
                value_groups(chunk.len(), 9)
            ));
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
                    .bind(c.recipient_id)
                    .bind(&c.channel)
                    .bind(&c.certified_on)
                    .bind(&c.recorded_at)
                    .bind(&c.actor)
                    .bind(&c.region_code)
                    .bind(&c.outcome)
                    .bind(&c.reason)
                    .bind(&c.evidence);
            }
            for r in q.fetch_all(self.conn()).await? {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// Sets `(id, last_certified_on, next_due_on)` for many pensioners in one statement
    /// per chunk.
    pub async fn set_certified_many(
        &mut self,
        rows: &[(i64, String, String)],
        now: &str,
    ) -> Result<()> {
        for chunk in rows.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "UPDATE recipients SET last_certified_on = v.column2, next_due_on = v.column3, updated_at = ? \
                 FROM (VALUES {}) AS v WHERE recipients.id = v.column1",
                value_groups(chunk.len(), 3)
            ));
            let mut q = sqlx::query(&sql).bind(now);
            for (id, last, next) in chunk {
                q = q.bind(*id).bind(last).bind(next);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }
}

/// What the feed pipeline checks of a matched pensioner before storing a record.
#[derive(Debug, Clone)]
pub struct RecipientFacts {
    pub id: i64,
    pub birth_date: String,
    pub status: String,
    pub death_date: Option<String>,
}

impl WriteTx {
    /// Birth date, status and death date of these pensioners (those that exist).
    pub async fn recipient_facts(&mut self, ids: &[i64]) -> Result<Vec<RecipientFacts>> {
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "SELECT id, birth_date, status, death_date FROM recipients WHERE id IN ({})",
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.conn()).await? {
                out.push(RecipientFacts {
                    id: r.try_get(0)?,
                    birth_date: r.try_get(1)?,
                    status: r.try_get(2)?,
                    death_date: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }
}
