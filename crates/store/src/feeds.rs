//! Feed records: every record received from another department, once per source and
//! record id, with what it was matched to.

use crate::records::{in_list, value_groups};
use crate::{Result, WriteTx};
use sqlx::Row;

/// A record to store, for one source ([`WriteTx::insert_feed_records`]).
#[derive(Debug, Clone)]
pub struct NewFeedRecord<'a> {
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
    pub source_no: i64,
    pub record_id: String,
    pub id: i64,
    pub kind: String,
    pub recipient_id: Option<i64>,
    pub event_date: Option<String>,
    pub voided: bool,
}

impl WriteTx {
    /// The record this source sent under `record_id`, if it did.
    pub async fn feed_record(
        &mut self,
        source: &str,
        record_id: &str,
    ) -> Result<Option<FeedRecordRow>> {
        let sql = self.sql(
            "SELECT f.source_no, f.id, f.kind, f.recipient_id, f.event_date, f.voided \
             FROM feed_records f JOIN feed_sources s ON s.no = f.source_no \
             WHERE s.name = ? AND f.record_id = ?",
        );
        let row = sqlx::query(&sql)
            .bind(source)
            .bind(record_id)
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| {
            Ok(FeedRecordRow {
                source_no: r.try_get(0)?,
                record_id: record_id.to_string(),
                id: r.try_get(1)?,
                kind: r.try_get(2)?,
                recipient_id: r.try_get(3)?,
                event_date: r.try_get(4)?,
                voided: r.try_get::<i64, _>(5)? != 0,
            })
        })
        .transpose()
    }

    /// Marks a record voided and takes back its sign of life, if it was one.
    pub async fn void_feed_record(&mut self, record: &FeedRecordRow) -> Result<()> {
        let sql =
            self.sql("UPDATE feed_records SET voided = 1 WHERE source_no = ? AND record_id = ?");
        sqlx::query(&sql)
            .bind(record.source_no)
            .bind(&record.record_id)
            .execute(self.conn())
            .await?;
        if let Some(recipient_id) = record.recipient_id {
            // Among the pensioner's signs (the key's first column).
            let sql =
                self.sql("DELETE FROM life_signs WHERE recipient_id = ? AND feed_record_id = ?");
            sqlx::query(&sql)
                .bind(recipient_id)
                .bind(record.id)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    /// Stores signs of life, sorted first so that each page of the table is written once
    /// however the feed was ordered. A sign stored before is left as it was.
    pub async fn insert_life_signs(&mut self, signs: &mut [LifeSign]) -> Result<()> {
        signs.sort_unstable();
        for chunk in signs.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO life_signs (recipient_id, day, feed_record_id, weight_milli) VALUES {} \
                 ON CONFLICT (recipient_id, day, feed_record_id) DO NOTHING",
                value_groups(chunk.len(), 4)
            ));
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q
                    .bind(s.recipient_id)
                    .bind(s.day)
                    .bind(s.feed_record_id)
                    .bind(s.weight_milli);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
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
    /// Pensioners not terminated, a page at a time by id (in id order).
    pub async fn match_candidates_page(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<MatchCandidateRow>> {
        let fields = format!(
            "id || ',' || {} || ',' || gender || ',' || birth_date || ',' || region_code",
            self.hex("name_enc")
        );
        let joined = self
            .joined_page(
                &fields,
                "SELECT id, name_enc, gender, birth_date, region_code FROM recipients WHERE id > ? AND status <> 'terminated' ORDER BY id LIMIT ?",
                after_id,
                limit,
            )
            .await?;
        let mut out = parse_joined(&joined, limit, |row| {
            let [id, name, gender, birth_date, region_code] = split_fields(row)?;
            Ok(MatchCandidateRow {
                id: id.parse().map_err(|_| corrupt_row(row))?,
                name_enc: from_hex(name).ok_or_else(|| corrupt_row(row))?,
                gender: gender.to_string(),
                birth_date: birth_date.to_string(),
                region_code: region_code.to_string(),
            })
        })?;
        out.sort_unstable_by_key(|c| c.id);
        Ok(out)
    }

    /// Every pensioner's ID-number look-up token, a page at a time by id (for matching a
    /// large feed in memory rather than one query per record), in id order.
    pub async fn id_index_page(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let fields = format!("id || ',' || {}", self.hex("id_bidx"));
        let joined = self
            .joined_page(
                &fields,
                "SELECT id, id_bidx FROM recipients WHERE id > ? ORDER BY id LIMIT ?",
                after_id,
                limit,
            )
            .await?;
        let mut out = parse_joined(&joined, limit, |row| {
            let [id, bidx] = split_fields(row)?;
            Ok((
                id.parse().map_err(|_| corrupt_row(row))?,
                from_hex(bidx).ok_or_else(|| corrupt_row(row))?,
            ))
        })?;
        out.sort_unstable_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// A page of rows read as one string per page (`fields` joined with `;`): a page of
    /// 20,000 pensioners read row by row cost the SQLite driver a hand-over between threads
    /// per row, most of the time of reading the roll for a large feed. The fields must not
    /// contain `;`.
    async fn joined_page(
        &self,
        fields: &str,
        page: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Option<String>> {
        let sql = self.sql(&joined_sql(self.dialect, fields, page));
        Ok(sqlx::query(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// A binary column as hexadecimal text.
    fn hex(&self, column: &str) -> String {
        match self.dialect {
            crate::Dialect::Sqlite => format!("hex({column})"),
            crate::Dialect::Postgres => format!("encode({column}, 'hex')"),
        }
    }
}

/// A query that reads the rows of `inner` as one string: `fields` (an expression over its
/// columns, with no `;` and no NULL) joined by `;`. The rows' order is not kept.
fn joined_sql(dialect: crate::Dialect, fields: &str, inner: &str) -> String {
    format!(
        "SELECT {} FROM ({inner}) AS page",
        string_agg(dialect, fields, ";")
    )
}

/// The aggregate that joins `expr` over a group's rows with `separator`.
fn string_agg(dialect: crate::Dialect, expr: &str, separator: &str) -> String {
    match dialect {
        crate::Dialect::Sqlite => format!("group_concat({expr}, '{separator}')"),
        crate::Dialect::Postgres => format!("string_agg({expr}, '{separator}')"),
    }
}

/// The rows of a [`joined_sql`] string (none when it is NULL: no rows), read in place.
fn joined_rows(joined: &Option<String>) -> impl Iterator<Item = &str> {
    joined.as_deref().into_iter().flat_map(|j| j.split(';'))
}

/// Each row of a [`joined_sql`] page of at most `limit` rows, parsed (into a vector sized
/// once: grown row by row, a page of 20,000 was copied a dozen times into fresh memory).
fn parse_joined<T>(
    joined: &Option<String>,
    limit: i64,
    mut parse: impl FnMut(&str) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1 << 20));
    for row in joined_rows(joined) {
        out.push(parse(row)?);
    }
    Ok(out)
}

/// The `N` comma-separated fields of a joined row, read in place.
fn split_fields<const N: usize>(row: &str) -> Result<[&str; N]> {
    let mut parts = row.split(',');
    let mut out = [""; N];
    for slot in &mut out {
        *slot = parts.next().ok_or_else(|| corrupt_row(row))?;
    }
    match parts.next() {
        None => Ok(out),
        Some(_) => Err(corrupt_row(row)),
    }
}

/// An empty field of a joined row is a NULL.
fn optional(field: &str) -> Option<String> {
    (!field.is_empty()).then(|| field.to_string())
}

fn corrupt_row(row: &str) -> crate::StoreError {
    crate::StoreError::Corrupt(format!(
        "a pensioner row read for a feed does not parse ({} characters)",
        row.len()
    ))
}

/// Upper- or lower-case hexadecimal to bytes (a million names are read this way to build
/// the matcher: a table look-up per digit, into a vector of the right size).
fn from_hex(s: &str) -> Option<Vec<u8>> {
    const INVALID: u8 = 0xff;
    const NIBBLE: [u8; 256] = {
        let mut t = [INVALID; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for p in b.chunks_exact(2) {
        let (hi, lo) = (NIBBLE[usize::from(p[0])], NIBBLE[usize::from(p[1])]);
        if (hi | lo) > 0x0f {
            return None;
        }
        out.push(hi << 4 | lo);
    }
    Some(out)
}

/// A sign of life to store: ordered by pensioner, then day, as the table is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LifeSign {
    pub recipient_id: i64,
    /// The event's date, as days since 1970-01-01.
    pub day: i64,
    pub feed_record_id: i64,
    pub weight_milli: i64,
}

/// A pensioner's signs of life as the pending-application pass reads them.
#[derive(Debug, Clone)]
pub struct LifeSignRow {
    pub recipient_id: i64,
    /// `day:weight` (days since 1970-01-01, thousandths), joined by commas.
    pub signs: String,
}

/// What deciding on a pensioner's signs of life needs of them.
#[derive(Debug, Clone)]
pub struct LifeFacts {
    pub status: String,
    pub death_date: Option<String>,
    pub last_certified_on: Option<String>,
    pub benefit_start: String,
    pub birth_date: String,
    pub region_code: String,
}

/// Rows per multi-row insert: well under SQLite's 32,766 bound variables.
pub const FEED_INSERT_ROWS: usize = 2_000;

impl WriteTx {
    /// Stores many records of one source at once (their record ids distinct), as one
    /// receipt dated `now`; returns, for each in order, its row id, or `None` if this
    /// source sent that record id before (the row is then left as it was). The unique key
    /// decides, in the same statement (asking first with `record_id IN (…)` let
    /// PostgreSQL, without statistics on a young table, scan the whole table for every
    /// 2,000 records).
    pub async fn insert_feed_records(
        &mut self,
        source: &str,
        records: &[NewFeedRecord<'_>],
        now: &str,
    ) -> Result<Vec<Option<i64>>> {
        let mut out = Vec::with_capacity(records.len());
        if records.is_empty() {
            return Ok(out);
        }
        let source_no = self.feed_source_no(source).await?;
        let sql = self
            .sql("INSERT INTO feed_receipts (source_no, received_at) VALUES (?, ?) RETURNING id");
        let receipt: i64 = sqlx::query_scalar(&sql)
            .bind(source_no)
            .bind(now)
            .fetch_one(self.conn())
            .await?;
        // Row ids are handed out here, one per record; a record sent before leaves a gap
        // (unless all of them were, see below).
        let sql = self.sql("UPDATE feed_record_ids SET next = next + ? RETURNING next");
        let next: i64 = sqlx::query_scalar(&sql)
            .bind(records.len() as i64)
            .fetch_one(self.conn())
            .await?;
        let first_id = next - records.len() as i64;
        let mut id = first_id;
        // SQLite's driver hands each row of a RETURNING over between threads: there the
        // count tells, and only a run with records sent before is asked which.
        let returning = self.dialect == crate::Dialect::Postgres;
        for chunk in records.chunks(FEED_INSERT_ROWS) {
            let first = id;
            let sql = self.sql(&format!(
                "INSERT INTO feed_records (source_no, record_id, id, receipt, kind, recipient_id, class, event_date, weight_milli, void_of, voided) \
                 VALUES {} ON CONFLICT (source_no, record_id) DO NOTHING{}",
                value_groups(chunk.len(), 11),
                if returning { " RETURNING id" } else { "" }
            ));
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(source_no)
                    .bind(r.record_id)
                    .bind(id)
                    .bind(receipt)
                    .bind(r.kind)
                    .bind(r.recipient_id)
                    .bind(r.class)
                    .bind(r.event_date)
                    .bind(r.weight_milli)
                    .bind(r.void_of)
                    .bind(0_i64);
                id += 1;
            }
            let new: std::collections::HashSet<i64> = if returning {
                let rows = q.fetch_all(self.conn()).await?;
                rows.iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?
            } else {
                let stored = q.execute(self.conn()).await?.rows_affected() as usize;
                if stored == chunk.len() || stored == 0 {
                    out.extend((first..id).map(|id| (stored != 0).then_some(id)));
                    continue;
                }
                let sql = self.sql(&format!(
                    "SELECT id FROM feed_records WHERE source_no = ? AND record_id IN ({})",
                    in_list(chunk.len())
                ));
                let mut q = sqlx::query_scalar(&sql).bind(source_no);
                for r in chunk {
                    q = q.bind(r.record_id);
                }
                q.fetch_all(self.conn()).await?.into_iter().collect()
            };
            out.extend((first..id).map(|id| new.contains(&id).then_some(id)));
        }
        if out.iter().all(Option::is_none) {
            // All sent before: the batch leaves no trace, not even its receipt and ids
            // (writers take turns, so nobody has taken ids after these).
            let sql = self.sql("UPDATE feed_record_ids SET next = ?");
            sqlx::query(&sql)
                .bind(first_id)
                .execute(self.conn())
                .await?;
            let sql = self.sql("DELETE FROM feed_receipts WHERE id = ?");
            sqlx::query(&sql).bind(receipt).execute(self.conn()).await?;
        }
        Ok(out)
    }

    /// The number that stands for a source in its feed records, given on first use.
    async fn feed_source_no(&mut self, source: &str) -> Result<i64> {
        let sql = self.sql("SELECT no FROM feed_sources WHERE name = ?");
        let known: Option<i64> = sqlx::query_scalar(&sql)
            .bind(source)
            .fetch_optional(self.conn())
            .await?;
        if let Some(no) = known {
            return Ok(no);
        }
        let sql = self.sql("INSERT INTO feed_sources (name) VALUES (?) RETURNING no");
        Ok(sqlx::query_scalar(&sql)
            .bind(source)
            .fetch_one(self.conn())
            .await?)
    }

    /// Opens many review cases of one kind at once, `(pensioner, details)` each; returns
    /// `(case id, pensioner)` for each.
    pub async fn open_review_cases(
        &mut self,
        kind: &str,
        cases: &[(i64, String)],
        opened_by: &str,
        opened_at: &str,
    ) -> Result<Vec<(i64, i64)>> {
        let mut out = Vec::with_capacity(cases.len());
        for chunk in cases.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO review_cases (recipient_id, kind, status, certification_id, opened_by, opened_at, details) VALUES {}{}",
                (0..chunk.len())
                    .map(|_| "(?, ?, 'open', NULL, ?, ?, ?)")
                    .collect::<Vec<_>>()
                    .join(", "),
                self.returning_ids()
            ));
            let mut q = sqlx::query(&sql);
            for (recipient_id, details) in chunk {
                q = q
                    .bind(*recipient_id)
                    .bind(kind)
                    .bind(opened_by)
                    .bind(opened_at)
                    .bind(details.as_str());
            }
            let recipients = chunk.iter().map(|c| c.0);
            out.extend(self.inserted_ids(q, "review_cases", recipients).await?);
        }
        Ok(out)
    }

    /// ` RETURNING id, recipient_id` where the ids of a multi-row INSERT must be read back
    /// (see [`WriteTx::inserted_ids`]).
    fn returning_ids(&self) -> &'static str {
        match self.ids_are_consecutive() {
            true => "",
            false => " RETURNING id, recipient_id",
        }
    }

    /// Runs a multi-row INSERT into `table` (ending in [`WriteTx::returning_ids`]) of rows
    /// for these pensioners, in VALUES order; returns `(id, pensioner)` of each row.
    async fn inserted_ids<'q>(
        &mut self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        table: &str,
        recipients: impl ExactSizeIterator<Item = i64>,
    ) -> Result<Vec<(i64, i64)>> {
        if !self.ids_are_consecutive() {
            let rows = q.fetch_all(self.conn()).await?;
            return rows
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect();
        }
        let before = self.last_id(table).await?;
        let stored = q.execute(self.conn()).await?.rows_affected();
        let sent = recipients.len();
        if stored as usize != sent {
            return Err(crate::StoreError::Corrupt(format!(
                "{stored} of {sent} rows were stored in {table}"
            )));
        }
        Ok((before + 1..).zip(recipients).collect())
    }

    /// Whether the rows of one multi-row INSERT get consecutive ids after the largest
    /// before it, in the order of their VALUES: on SQLite, whose writer holds the whole
    /// database and gives a new row the largest id plus one. There the ids are worked out
    /// instead of read back (RETURNING costs its driver a hand-over between threads per
    /// row). PostgreSQL's sequences promise no such thing under concurrent writers.
    fn ids_are_consecutive(&self) -> bool {
        self.dialect == crate::Dialect::Sqlite
    }

    /// The largest id in `table` (0 when empty).
    async fn last_id(&mut self, table: &str) -> Result<i64> {
        let sql = format!("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM {table}");
        Ok(sqlx::query(&sql).fetch_one(self.conn()).await?.try_get(0)?)
    }

    /// Lists pensioners whose new signs of life are still to be added up.
    pub async fn add_pending_life(&mut self, ids: &[i64]) -> Result<()> {
        let blocks = pending_blocks(ids);
        for chunk in blocks.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO life_pending (block, bits) VALUES {} \
                 ON CONFLICT (block) DO UPDATE SET bits = life_pending.bits | excluded.bits",
                value_groups(chunk.len(), 2)
            ));
            let mut q = sqlx::query(&sql);
            for (block, bits) in chunk {
                q = q.bind(*block).bind(*bits);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Pensioners (`limit` or a few more: whole rows of the list) with signs of life still
    /// to add up, in id order, with what deciding on them needs (`None` for an id that
    /// names no pensioner). Only these few columns: the pass reads a row for every
    /// pensioner a feed names.
    pub async fn pending_life(&mut self, limit: i64) -> Result<Vec<(i64, Option<LifeFacts>)>> {
        let mut ids = Vec::new();
        let mut after = -1_i64;
        let sql = self.sql(&joined_sql(
            self.dialect,
            "block || ',' || bits",
            "SELECT block, bits FROM life_pending WHERE block > ? ORDER BY block LIMIT 1000",
        ));
        while (ids.len() as i64) < limit {
            let joined = sqlx::query(&sql)
                .bind(after)
                .fetch_one(self.conn())
                .await?
                .try_get(0)?;
            let mut page = parse_joined(&joined, 1000, |row| {
                let [block, bits] = split_fields(row)?;
                Ok((
                    block.parse::<i64>().map_err(|_| corrupt_row(row))?,
                    bits.parse::<i64>().map_err(|_| corrupt_row(row))?,
                ))
            })?;
            if page.is_empty() {
                break;
            }
            page.sort_unstable_by_key(|(block, _)| *block);
            for (block, bits) in page {
                after = block;
                ids.extend(pending_ids(block, bits));
                if ids.len() as i64 >= limit {
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&joined_sql(
                self.dialect,
                "id || ',' || status || ',' || COALESCE(death_date, '') || ',' || COALESCE(last_certified_on, '') || ',' || benefit_start || ',' || birth_date || ',' || region_code",
                &format!(
                    "SELECT id, status, death_date, last_certified_on, benefit_start, birth_date, region_code \
                     FROM recipients WHERE id IN ({})",
                    in_list(chunk.len())
                ),
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            let joined = q.fetch_one(self.conn()).await?.try_get(0)?;
            let mut found = parse_joined(&joined, chunk.len() as i64, |row| {
                let [id, status, death, last, start, birth, region] = split_fields(row)?;
                Ok((
                    id.parse::<i64>().map_err(|_| corrupt_row(row))?,
                    LifeFacts {
                        status: status.to_string(),
                        death_date: optional(death),
                        last_certified_on: optional(last),
                        benefit_start: start.to_string(),
                        birth_date: birth.to_string(),
                        region_code: region.to_string(),
                    },
                ))
            })?;
            found.sort_unstable_by_key(|(id, _)| *id);
            let mut found = found.into_iter().peekable();
            for &id in chunk {
                let facts = found.next_if(|(f, _)| *f == id).map(|(_, facts)| facts);
                out.push((id, facts));
            }
        }
        Ok(out)
    }

    /// Takes these pensioners off the pending list.
    pub async fn clear_pending_life(&mut self, ids: &[i64]) -> Result<()> {
        let blocks = pending_blocks(ids);
        for chunk in blocks.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&format!(
                "UPDATE life_pending SET bits = life_pending.bits & ~v.column2 \
                 FROM (VALUES {}) AS v WHERE life_pending.block = v.column1",
                value_groups(chunk.len(), 2)
            ));
            let mut q = sqlx::query(&sql);
            for (block, bits) in chunk {
                q = q.bind(*block).bind(*bits);
            }
            q.execute(self.conn()).await?;
            let sql = self.sql(&format!(
                "DELETE FROM life_pending WHERE bits = 0 AND block IN ({})",
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for (block, _) in chunk {
                q = q.bind(*block);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// The signs of life (not voided) of these pensioners dated on or after day `from`:
    /// one row per pensioner, its signs as `day:weight` joined by commas (rows, not values,
    /// are what reading costs).
    pub async fn life_signs_of(&mut self, ids: &[i64], from: i64) -> Result<Vec<LifeSignRow>> {
        let signs = string_agg(self.dialect, "day || ':' || weight_milli", ",");
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(FEED_INSERT_ROWS) {
            // All of them as one string: `pensioner=signs` joined by `;`.
            let sql = self.sql(&joined_sql(
                self.dialect,
                "recipient_id || '=' || signs",
                &format!(
                    "SELECT recipient_id, {signs} AS signs FROM life_signs \
                     WHERE recipient_id IN ({}) AND day >= ? GROUP BY recipient_id",
                    in_list(chunk.len())
                ),
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            let joined = q.bind(from).fetch_one(self.conn()).await?.try_get(0)?;
            for row in joined_rows(&joined) {
                let (id, signs) = row.split_once('=').ok_or_else(|| corrupt_row(row))?;
                out.push(LifeSignRow {
                    recipient_id: id.parse().map_err(|_| corrupt_row(row))?,
                    signs: signs.to_string(),
                });
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
                 VALUES {}{}",
                value_groups(chunk.len(), 9),
                self.returning_ids()
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
            let recipients = chunk.iter().map(|c| c.recipient_id);
            out.extend(self.inserted_ids(q, "certifications", recipients).await?);
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

/// The fields [`RecipientFacts`] are read from, joined (see [`joined_sql`]).
const FACTS_FIELDS: &str =
    "id || ',' || birth_date || ',' || status || ',' || COALESCE(death_date, '')";

impl WriteTx {
    /// Birth date, status and death date of these pensioners (those that exist).
    pub async fn recipient_facts(&mut self, ids: &[i64]) -> Result<Vec<RecipientFacts>> {
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(FEED_INSERT_ROWS) {
            let sql = self.sql(&joined_sql(
                self.dialect,
                FACTS_FIELDS,
                &format!(
                    "SELECT id, birth_date, status, death_date FROM recipients {} WHERE id IN ({})",
                    self.facts_index(),
                    in_list(chunk.len())
                ),
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            let joined = q.fetch_one(self.conn()).await?.try_get(0)?;
            read_facts(&joined, &mut out)?;
        }
        Ok(out)
    }

    /// The facts of every pensioner, a page at a time by id (in id order): for a feed
    /// that names most of the roll, one pass over it instead of a look-up per pensioner.
    pub async fn recipient_facts_page(
        &mut self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<RecipientFacts>> {
        let sql = self.sql(&joined_sql(
            self.dialect,
            FACTS_FIELDS,
            &format!(
                "SELECT id, birth_date, status, death_date FROM recipients {} WHERE id > ? ORDER BY id LIMIT ?",
                self.facts_index()
            ),
        ));
        let joined = sqlx::query(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_one(self.conn())
            .await?
            .try_get(0)?;
        let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
        read_facts(&joined, &mut out)?;
        out.sort_unstable_by_key(|r| r.id);
        Ok(out)
    }

    /// SQLite would rather look up each row of the roll (a random page read apiece) than
    /// use the narrow index, which stays in the page cache. PostgreSQL has no such index:
    /// an update that moves a pensioner's due date adds an entry to every index of the
    /// table, and its look-ups by primary key are cheap enough.
    fn facts_index(&self) -> &'static str {
        match self.dialect {
            crate::Dialect::Sqlite => "INDEXED BY recipients_facts",
            crate::Dialect::Postgres => "",
        }
    }
}

/// Appends the facts in `joined` (rows of [`FACTS_FIELDS`]) to `out`.
fn read_facts(joined: &Option<String>, out: &mut Vec<RecipientFacts>) -> Result<()> {
    for row in joined_rows(joined) {
        let [id, birth_date, status, death_date] = split_fields(row)?;
        out.push(RecipientFacts {
            id: id.parse().map_err(|_| corrupt_row(row))?,
            birth_date: birth_date.to_string(),
            status: status.to_string(),
            death_date: optional(death_date),
        });
    }
    Ok(())
}

/// Pensioner ids as rows of the pending list: `(id / 64, a bit per id % 64)`, by block.
fn pending_blocks(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut blocks: Vec<(i64, i64)> = ids
        .iter()
        .map(|id| (id.div_euclid(64), 1_i64 << id.rem_euclid(64)))
        .collect();
    blocks.sort_unstable_by_key(|(block, _)| *block);
    blocks.dedup_by(|(block, bits), (kept, kept_bits)| {
        let same = block == kept;
        if same {
            *kept_bits |= *bits;
        }
        same
    });
    blocks
}

/// The pensioner ids a row of the pending list holds, in order.
fn pending_ids(block: i64, bits: i64) -> impl Iterator<Item = i64> {
    (0..64)
        .filter(move |bit| bits & (1_i64 << bit) != 0)
        .map(move |bit| block * 64 + bit)
}

#[cfg(test)]
mod tests {
    use super::{from_hex, joined_rows, pending_blocks, pending_ids, split_fields};

    #[test]
    fn pending_pensioners_are_kept_64_to_a_row() {
        let ids = [1, 63, 64, 5, 127, 128, 64, 6_400_000];
        let blocks = pending_blocks(&ids);
        assert_eq!(
            blocks,
            vec![
                (0, (1 << 1) | (1 << 5) | (1 << 63)),
                (1, 1 | (1 << 63)),
                (2, 1),
                (100_000, 1)
            ]
        );
        let back: Vec<i64> = blocks
            .iter()
            .flat_map(|&(block, bits)| pending_ids(block, bits))
            .collect();
        assert_eq!(back, vec![1, 5, 63, 64, 127, 128, 6_400_000]);
        assert!(pending_blocks(&[]).is_empty());
    }

    #[test]
    fn joined_rows_and_their_fields_are_read_in_place() {
        let joined = Some("1,a,b;2,c,".to_string());
        let rows: Vec<&str> = joined_rows(&joined).collect();
        assert_eq!(rows, ["1,a,b", "2,c,"]);
        assert_eq!(split_fields::<3>(rows[1]).unwrap(), ["2", "c", ""]);
        assert!(split_fields::<2>(rows[0]).is_err(), "a field too many");
        assert!(split_fields::<4>(rows[0]).is_err(), "a field too few");
        assert_eq!(joined_rows(&None).count(), 0);
    }

    #[test]
    fn hex_reads_both_cases_and_refuses_the_rest() {
        assert_eq!(from_hex("00Ff7a"), Some(vec![0x00, 0xff, 0x7a]));
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
