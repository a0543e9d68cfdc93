//! Monthly payment runs: `export` writes one instruction per pensioner (pay, withhold,
//! back_pay, stop, recover) and records it in the ledger; `close` makes the month final,
//! after which the ledger counts its paid months as paid.

use crate::death::parse_month_list;
use crate::{parse_stored_month, Actor, App, AppError, Result};
use lifecert_domain::payment::advance_settled;
use lifecert_domain::{
    Fen, Instruction, InstructionKind, LedgerView, PaymentStatus, SuspensionReason, YearMonth,
};
use lifecert_store::{LedgerRow, PaymentLine, WriteTx};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExportReport {
    pub month: String,
    pub pay: u64,
    pub withhold: u64,
    pub back_pay: u64,
    pub stop: u64,
    pub recover: u64,
    /// Money paid out by `pay` and `back_pay` lines.
    pub total_fen: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CloseReport {
    pub month: String,
    pub status: String,
    pub lines: i64,
    pub total_fen: i64,
}

fn months_text(months: &[YearMonth], sep: &str) -> String {
    months
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// The file is written beside its destination and renamed into place only after the
/// ledger commits, so a failed run never leaves a half-written instruction file.
struct PartialFile {
    path: PathBuf,
    dest: PathBuf,
}

impl PartialFile {
    fn create(dest: &Path) -> Result<(PartialFile, std::fs::File)> {
        let name = dest.file_name().ok_or_else(|| {
            AppError::invalid(
                "out",
                "give a file name to write, e.g. payments-2026-11.csv",
            )
        })?;
        let path = dest.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|e| AppError::Io(format!("cannot write {}: {e}", path.display())))?;
        Ok((
            PartialFile {
                path,
                dest: dest.to_path_buf(),
            },
            file,
        ))
    }

    /// Moves the file into place; `Drop` then finds nothing left to remove.
    fn finish(self) -> Result<()> {
        std::fs::rename(&self.path, &self.dest)
            .map_err(|e| AppError::Io(format!("cannot write {}: {e}", self.dest.display())))
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

const PAGE: i64 = 5000;

impl App {
    fn ledger_view(
        &self,
        row: &LedgerRow,
        recovery: Option<&(Vec<YearMonth>, Fen)>,
    ) -> Result<LedgerView> {
        let status = PaymentStatus::from_parts(&row.status, row.suspension_reason.as_deref())
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        Ok(LedgerView {
            status,
            suspension_reason: status.suspension_reason(),
            monthly: Fen::new(row.monthly_amount_fen),
            benefit_start: parse_stored_month(&row.benefit_start)?,
            settled_through: row
                .settled_through
                .as_deref()
                .map(parse_stored_month)
                .transpose()?,
            settled_after: parse_month_list(row.settled_after.as_deref())?,
            recovery_due: recovery.cloned(),
        })
    }

    /// Checked inside the write transaction, so a concurrent close cannot slip between
    /// the check and the replacement of the month's lines.
    async fn check_month_can_export(tx: &mut WriteTx, month: YearMonth) -> Result<()> {
        let m = month.to_string();
        if let Some(run) = tx.payment_run(&m).await? {
            if run.status == "closed" {
                return Err(AppError::conflict(
                    "month_closed",
                    format!("the payment run for {m} is closed and cannot be exported again; its instructions are final"),
                ));
            }
        }
        let (last_closed, first_open) = tx.run_bounds().await?;
        if let Some(open) = first_open.filter(|o| *o < m) {
            return Err(AppError::conflict(
                "earlier_month_open",
                format!("the payment run for {open} is still open: close it with `lifecert payments close --month {open}` before exporting {m}"),
            ));
        }
        if let Some(closed) = last_closed.filter(|c| *c > m) {
            return Err(AppError::conflict(
                "month_before_closed",
                format!("{m} is before {closed}, which is already closed: payment runs go forward month by month"),
            ));
        }
        Ok(())
    }

    /// Writes the month's instructions to `out` (CSV) and records them in the ledger.
    /// Exporting an open month again replaces its lines, and gives the same instructions
    /// if nothing changed in between.
    #[tracing::instrument(skip_all, fields(month = %month))]
    pub async fn export_payments(
        &self,
        actor: &Actor,
        month: YearMonth,
        out: &Path,
    ) -> Result<ExportReport> {
        let m = month.to_string();
        let now = self.now_string();
        let (partial, file) = PartialFile::create(out)?;
        let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(file));
        let io = |e: &dyn std::fmt::Display| {
            AppError::Io(format!("cannot write {}: {e}", out.display()))
        };
        csv.write_record([
            "month",
            "recipient_id",
            "id_number",
            "name",
            "kind",
            "months",
            "amount_fen",
            "amount_yuan",
            "reason",
        ])
        .map_err(|e| io(&e))?;
        let mut report = ExportReport {
            month: m.clone(),
            ..ExportReport::default()
        };
        let mut tx = self.store.begin_write().await?;
        Self::check_month_can_export(&mut tx, month).await?;
        let mut recoveries: HashMap<i64, (Vec<YearMonth>, Fen)> = HashMap::new();
        for r in tx.open_recoveries().await? {
            let entry = recoveries
                .entry(r.recipient_id)
                .or_insert((Vec::new(), Fen::ZERO));
            entry.0.extend(parse_month_list(Some(&r.months))?);
            entry.1 = entry.1 + Fen::new(r.amount_fen);
        }
        tx.start_payment_run(&m, &now).await?;
        let mut after_id = 0;
        let mut line_count = 0i64;
        loop {
            let page = tx.ledger_page(after_id, PAGE).await?;
            let Some(last) = page.last() else { break };
            after_id = last.id;
            let mut lines = Vec::with_capacity(page.len());
            for row in &page {
                let view = self.ledger_view(row, recoveries.get(&row.id))?;
                let Some(i) = view.instruction_for(month) else {
                    continue;
                };
                self.write_instruction(&mut csv, &m, row, &i)
                    .map_err(|e| io(&e))?;
                count(&mut report, &i);
                lines.push(PaymentLine {
                    recipient_id: row.id,
                    kind: i.kind.as_str().to_string(),
                    reason: i.reason.map(|r| r.as_str().to_string()),
                    months: months_text(&i.months, ","),
                    amount_fen: i.amount.get(),
                });
            }
            line_count += lines.len() as i64;
            tx.insert_payment_lines(&m, &lines).await?;
        }
        tx.finish_payment_run(&m, line_count, report.total_fen)
            .await?;
        self.audit(
            &mut tx,
            actor,
            "payments.exported",
            None,
            serde_json::to_value(&report).unwrap_or_default(),
        );
        let mut inner = csv.into_inner().map_err(|e| io(&e.error().to_string()))?;
        inner.flush().map_err(|e| io(&e))?;
        inner.get_ref().sync_all().map_err(|e| io(&e))?;
        tx.commit().await?;
        partial.finish()?;
        Ok(report)
    }

    fn write_instruction<W: Write>(
        &self,
        csv: &mut csv::Writer<W>,
        month: &str,
        row: &LedgerRow,
        i: &Instruction,
    ) -> std::result::Result<(), String> {
        let id = self
            .decrypt_id(&row.id_number_enc)
            .map_err(|e| e.to_string())?;
        let name = self
            .decrypt_name(&row.name_enc)
            .map_err(|e| e.to_string())?;
        csv.write_record([
            month,
            &row.id.to_string(),
            id.as_str(),
            &name,
            i.kind.as_str(),
            &months_text(&i.months, ";"),
            &i.amount.get().to_string(),
            &i.amount.to_string(),
            i.reason.map(|r| r.as_str()).unwrap_or(""),
        ])
        .map_err(|e| e.to_string())
    }

    /// Makes a month final: its paid months now count as paid, and the recovery cases its
    /// `recover` lines sent out count as requested from the bank.
    #[tracing::instrument(skip_all, fields(month = %month))]
    pub async fn close_payments(&self, actor: &Actor, month: YearMonth) -> Result<CloseReport> {
        let m = month.to_string();
        let now = self.now_string();
        let mut tx = self.store.begin_write().await?;
        let run = tx.payment_run(&m).await?.ok_or_else(|| {
            AppError::NotFound(format!("there is no payment run for {m}: export it first with `lifecert payments export --month {m} --out FILE`"))
        })?;
        if run.status == "closed" {
            return Err(AppError::conflict(
                "month_closed",
                format!("the payment run for {m} is already closed"),
            ));
        }
        tx.settle_simple_pay_lines(&m, &month.prev().to_string())
            .await?;
        for (line, settled_through, settled_after, benefit_start) in tx.lines_to_settle(&m).await? {
            let kind =
                InstructionKind::parse(&line.kind).map_err(|e| AppError::Corrupt(e.to_string()))?;
            let reason = line
                .reason
                .as_deref()
                .map(SuspensionReason::parse)
                .transpose()
                .map_err(|e| AppError::Corrupt(e.to_string()))?;
            let instruction = Instruction {
                kind,
                months: parse_month_list(Some(&line.months))?.into_iter().collect(),
                amount: Fen::new(line.amount_fen),
                reason,
            };
            let mut settled = parse_month_list(settled_after.as_deref())?;
            settled.extend(instruction.settles().iter().copied());
            let cursor = match settled_through.as_deref() {
                Some(s) => parse_stored_month(s)?,
                None => month.prev(),
            };
            let (cursor, rest): (YearMonth, BTreeSet<YearMonth>) =
                advance_settled(cursor, parse_stored_month(&benefit_start)?, settled);
            let cursor_s = cursor.to_string();
            let rest_s =
                (!rest.is_empty()).then(|| months_text(&rest.into_iter().collect::<Vec<_>>(), ","));
            if settled_through.as_deref() != Some(cursor_s.as_str()) || settled_after != rest_s {
                tx.set_settlement(line.recipient_id, Some(&cursor_s), rest_s.as_deref())
                    .await?;
            }
        }
        let today = self.today();
        let requested = tx
            .close_payment_run(&m, &now, &crate::date_str(today), &actor.label())
            .await?;
        self.audit(
            &mut tx,
            actor,
            "payments.closed",
            None,
            serde_json::json!({"month": m, "lines": run.lines, "total_fen": run.total_fen, "recoveries_requested": requested.len()}),
        );
        self.audit_run_requests(&mut tx, actor, &m, today, &requested);
        tx.commit().await?;
        Ok(CloseReport {
            month: m,
            status: "closed".to_string(),
            lines: run.lines,
            total_fen: run.total_fen,
        })
    }
}

fn count(report: &mut ExportReport, i: &Instruction) {
    match i.kind {
        InstructionKind::Pay => report.pay += 1,
        InstructionKind::Withhold => report.withhold += 1,
        InstructionKind::BackPay => report.back_pay += 1,
        InstructionKind::Stop => report.stop += 1,
        InstructionKind::Recover => report.recover += 1,
    }
    report.total_fen += i.paid_out().get();
}

/// One payment instruction as an integration (the disbursing bank's system) receives it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstructionView {
    pub recipient_id: i64,
    pub id_number: String,
    pub name: String,
    /// pay, withhold, back_pay, stop or recover
    pub kind: String,
    pub months: Vec<String>,
    pub amount_fen: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstructionPage {
    pub month: String,
    /// open (may still change) or closed (final)
    pub status: String,
    pub items: Vec<InstructionView>,
    /// Pass as `after_recipient_id` for the next page; absent on the last page.
    pub next_after_recipient_id: Option<i64>,
}

impl App {
    /// A page of a month's instructions for an integration with the `payments` scope.
    /// Each fetch is audited: it hands personal data to another system.
    pub async fn instructions_for(
        &self,
        client: &crate::staff::ApiClient,
        month: YearMonth,
        after_recipient_id: i64,
        limit: i64,
    ) -> Result<InstructionPage> {
        client.require_scope("payments")?;
        let m = month.to_string();
        let run = self.store.payment_run(&m).await?.ok_or_else(|| {
            AppError::NotFound(format!("no payment run for {m}: it has not been exported"))
        })?;
        let limit = limit.clamp(1, 5000);
        let rows = self
            .store
            .instructions_page(&m, after_recipient_id, limit)
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(InstructionView {
                    recipient_id: r.line.recipient_id,
                    id_number: self.decrypt_id(&r.id_number_enc)?.as_str().to_string(),
                    name: self.decrypt_name(&r.name_enc)?,
                    kind: r.line.kind.clone(),
                    months: r
                        .line
                        .months
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    amount_fen: r.line.amount_fen,
                    reason: r.line.reason.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.store.begin_write().await?;
        self.audit(
            &mut tx,
            &Actor::Integration(client.name.clone()),
            "payments.instructions_fetched",
            None,
            serde_json::json!({"month": m, "after_recipient_id": after_recipient_id, "lines": items.len()}),
        );
        tx.commit().await?;
        let next = (items.len() as i64 == limit)
            .then(|| items.last().map(|i| i.recipient_id))
            .flatten();
        Ok(InstructionPage {
            month: m,
            status: run.status,
            items,
            next_after_recipient_id: next,
        })
    }
}
