//! `import recipients`: loads an agency's pensioner roll from CSV (UTF-8, with or
//! without BOM) or XLSX, with English or Chinese headers. Each row is validated and
//! either stored whole or rejected with its line, field and a code; rows are written in
//! batches, each in one transaction, so an interrupted import leaves no half-written row
//! and can simply be run again. Re-importing the same file changes nothing.

use crate::{date_str, parse_stored_month, Actor, App, AppError, Result};
use chrono::{Datelike, NaiveDate};
use lifecert_crypto::Field;
use lifecert_domain::{
    CountryCode, Fen, Gender, IdScheme, InsuranceType, NationalId, RegionCode, Residence, YearMonth,
};
use lifecert_store::RecipientImport;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    IdNumber,
    Name,
    InsuranceType,
    RegionCode,
    BenefitStart,
    MonthlyAmount,
    Phone,
    Residence,
    Country,
    LastCertifiedOn,
    PaidThrough,
    BirthDate,
    Gender,
}

/// In the order of [`NewRecipient`]'s fields, which `create_recipient` relies on.
const COLUMNS: [Column; 13] = [
    Column::IdNumber,
    Column::Name,
    Column::InsuranceType,
    Column::RegionCode,
    Column::BenefitStart,
    Column::MonthlyAmount,
    Column::Phone,
    Column::Residence,
    Column::Country,
    Column::LastCertifiedOn,
    Column::PaidThrough,
    Column::BirthDate,
    Column::Gender,
];

impl Column {
    fn field(self) -> &'static str {
        match self {
            Column::IdNumber => "id_number",
            Column::Name => "name",
            Column::InsuranceType => "insurance_type",
            Column::RegionCode => "region_code",
            Column::BenefitStart => "benefit_start",
            Column::MonthlyAmount => "monthly_amount",
            Column::Phone => "phone",
            Column::Residence => "residence",
            Column::Country => "country",
            Column::LastCertifiedOn => "last_certified_on",
            Column::PaidThrough => "paid_through",
            Column::BirthDate => "birth_date",
            Column::Gender => "gender",
        }
    }

    fn chinese(self) -> &'static [&'static str] {
        match self {
            Column::IdNumber => &["身份证号", "身份证号码", "公民身份号码"],
            Column::Name => &["姓名"],
            Column::InsuranceType => &["险种"],
            Column::RegionCode => &["参保地区划代码", "参保地"],
            Column::BenefitStart => &["待遇起始年月"],
            Column::MonthlyAmount => &["月养老金", "月养老金(元)", "月养老金（元）"],
            Column::Phone => &["联系电话", "手机号码"],
            Column::Residence => &["居住地"],
            Column::Country => &["居住国"],
            Column::LastCertifiedOn => &["上次认证日期"],
            Column::PaidThrough => &["已发放至"],
            Column::BirthDate => &["出生日期"],
            Column::Gender => &["性别"],
        }
    }

    /// Birth date and gender are in a GB 11643 number; other identifiers need them given.
    fn required(self, scheme: IdScheme) -> bool {
        match self {
            Column::IdNumber
            | Column::Name
            | Column::InsuranceType
            | Column::RegionCode
            | Column::BenefitStart
            | Column::MonthlyAmount => true,
            Column::BirthDate | Column::Gender => !scheme.id_carries_birth_date(),
            _ => false,
        }
    }

    fn from_header(h: &str) -> Option<Column> {
        let h = h.trim().trim_start_matches('\u{feff}').trim();
        let lower = h.to_ascii_lowercase();
        COLUMNS
            .into_iter()
            .find(|c| c.field() == lower || c.chinese().contains(&h))
    }
}

/// Where each known column sits in the file.
struct Header {
    positions: [Option<usize>; COLUMNS.len()],
    ignored: Vec<String>,
}

impl Header {
    fn parse(cells: &[String], scheme: IdScheme) -> Result<Header> {
        let mut positions = [None; COLUMNS.len()];
        let mut ignored = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            match Column::from_header(cell) {
                Some(c) => {
                    let slot = &mut positions[c as usize];
                    if slot.is_some() {
                        return Err(AppError::invalid(
                            "header",
                            format!("line 1: column {} appears twice", c.field()),
                        ));
                    }
                    *slot = Some(i);
                }
                None if cell.trim().is_empty() => {}
                None => ignored.push(cell.trim().to_string()),
            }
        }
        let missing: Vec<String> = COLUMNS
            .into_iter()
            .filter(|c| c.required(scheme) && positions[*c as usize].is_none())
            .map(|c| format!("{} ({})", c.field(), c.chinese()[0]))
            .collect();
        if !missing.is_empty() {
            let why = if scheme.id_carries_birth_date() {
                String::new()
            } else {
                format!(
                    " (with the {scheme} ID scheme birth_date and gender are required: the identifiers do not carry them)"
                )
            };
            return Err(AppError::invalid(
                "header",
                format!(
                    "line 1: required column(s) missing: {}{why}. The first line must name the columns, in English or Chinese",
                    missing.join(", ")
                ),
            ));
        }
        Ok(Header { positions, ignored })
    }

    fn get<'a>(&self, cells: &'a [String], c: Column) -> &'a str {
        self.positions[c as usize]
            .and_then(|i| cells.get(i))
            .map(|s| s.trim())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub errors: Vec<RowError>,
    /// Header cells that are not lifecert columns (left alone).
    #[serde(skip)]
    pub ignored_columns: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub done: u64,
    pub total: u64,
    pub rows: u64,
}

/// A row that passed validation.
struct ValidRow {
    line: u64,
    id: NationalId,
    birth_date: NaiveDate,
    gender: Gender,
    name: String,
    insurance_type: InsuranceType,
    region: RegionCode,
    benefit_start: YearMonth,
    monthly: Fen,
    phone: Option<String>,
    residence: Residence,
    country: Option<CountryCode>,
    last_certified_on: Option<NaiveDate>,
    paid_through: Option<YearMonth>,
}

fn row_error(line: u64, c: Column, code: &'static str, message: impl Into<String>) -> RowError {
    RowError {
        line,
        field: c.field().to_string(),
        code,
        message: message.into(),
    }
}

pub(crate) fn normalise_phone(s: &str) -> Option<String> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let body = digits.strip_prefix('+').unwrap_or(&digits);
    (5..=20)
        .contains(&body.len())
        .then_some(())
        .filter(|_| body.bytes().all(|b| b.is_ascii_digit()))
        .map(|_| digits.clone())
}

/// The row's birth date: the `birth_date` cell, which must agree with a GB 11643 number;
/// without the cell, the number's.
fn birth_date_of(
    h: &Header,
    cells: &[String],
    line: u64,
    id: &NationalId,
    today: NaiveDate,
) -> Result<NaiveDate, RowError> {
    use Column as C;
    let from_id = id.birth_date();
    let given = match h.get(cells, C::BirthDate) {
        "" => {
            return from_id.ok_or_else(|| {
                row_error(
                    line,
                    C::BirthDate,
                    "missing_birth_date",
                    format!(
                        "the birth date is empty: write it as YYYY-MM-DD, e.g. 1950-03-31 ({} identifiers do not carry it)",
                        id.scheme()
                    ),
                )
            })
        }
        d => lifecert_domain::parse_date(d)
            .map_err(|e| row_error(line, C::BirthDate, "invalid_date", e.to_string()))?,
    };
    if given > today {
        return Err(row_error(
            line,
            C::BirthDate,
            "invalid_date",
            format!("birth_date {given} is in the future"),
        ));
    }
    if given.year() < 1880 {
        return Err(row_error(
            line,
            C::BirthDate,
            "invalid_date",
            format!("birth_date {given} is before 1880: check the year"),
        ));
    }
    match from_id {
        Some(from_id) if from_id != given => Err(row_error(
            line,
            C::BirthDate,
            "birth_date_mismatch",
            format!(
                "birth_date {given} does not agree with the ID number ({from_id}): correct one of them, or leave birth_date empty"
            ),
        )),
        _ => Ok(given),
    }
}

/// The row's gender: the `gender` cell, which must agree with a GB 11643 number;
/// without the cell, the number's.
fn gender_of(h: &Header, cells: &[String], line: u64, id: &NationalId) -> Result<Gender, RowError> {
    use Column as C;
    let from_id = id.gender();
    let given = match h.get(cells, C::Gender) {
        "" => {
            return from_id.ok_or_else(|| {
                row_error(
                    line,
                    C::Gender,
                    "missing_gender",
                    format!(
                        "the gender is empty: write M or F (also male/female, 男/女) ({} identifiers do not carry it)",
                        id.scheme()
                    ),
                )
            })
        }
        g => Gender::parse_written(g)
            .map_err(|e| row_error(line, C::Gender, "invalid_gender", e.to_string()))?,
    };
    match from_id {
        Some(from_id) if from_id != given => Err(row_error(
            line,
            C::Gender,
            "gender_mismatch",
            format!(
                "gender {} does not agree with the ID number ({}): correct one of them, or leave gender empty",
                given.as_str(),
                from_id.as_str()
            ),
        )),
        _ => Ok(given),
    }
}

fn validate(
    h: &Header,
    cells: &[String],
    line: u64,
    today: NaiveDate,
    scheme: IdScheme,
) -> Result<ValidRow, RowError> {
    use Column as C;
    let id = scheme
        .parse_id(h.get(cells, C::IdNumber))
        .map_err(|e| row_error(line, C::IdNumber, "invalid_id_number", e.to_string()))?;
    let name = h.get(cells, C::Name);
    if name.is_empty() {
        return Err(row_error(
            line,
            C::Name,
            "missing_name",
            "the name is empty",
        ));
    }
    if name.chars().count() > 64 {
        return Err(row_error(
            line,
            C::Name,
            "invalid_name",
            "a name has at most 64 characters",
        ));
    }
    let insurance_type = InsuranceType::parse_any(h.get(cells, C::InsuranceType)).map_err(|e| {
        row_error(
            line,
            C::InsuranceType,
            "invalid_insurance_type",
            e.to_string(),
        )
    })?;
    let region = RegionCode::parse(h.get(cells, C::RegionCode))
        .map_err(|e| row_error(line, C::RegionCode, "invalid_region_code", e.to_string()))?;
    let birth_date = birth_date_of(h, cells, line, &id, today)?;
    let gender = gender_of(h, cells, line, &id)?;
    let birth_month = YearMonth::of(birth_date);
    let benefit_start = YearMonth::parse(h.get(cells, C::BenefitStart))
        .map_err(|e| row_error(line, C::BenefitStart, "invalid_date", e.to_string()))?;
    if benefit_start <= birth_month {
        return Err(row_error(
            line,
            C::BenefitStart,
            "invalid_date",
            format!("the benefit start {benefit_start} is not after the birth date ({birth_date})"),
        ));
    }
    let monthly = Fen::parse_monthly_yuan(h.get(cells, C::MonthlyAmount))
        .map_err(|e| row_error(line, C::MonthlyAmount, "invalid_amount", e.to_string()))?;
    let phone = match h.get(cells, C::Phone) {
        "" => None,
        p => Some(normalise_phone(p).ok_or_else(|| {
            row_error(
                line,
                C::Phone,
                "invalid_phone",
                format!("{p:?} is not a phone number"),
            )
        })?),
    };
    let residence = Residence::parse_any(h.get(cells, C::Residence))
        .map_err(|e| row_error(line, C::Residence, "invalid_residence", e.to_string()))?;
    let country = match (residence, h.get(cells, C::Country)) {
        (Residence::Abroad, "") => return Err(row_error(
            line,
            C::Country,
            "missing_country",
            "a pensioner living abroad needs the country of residence (ISO 3166 alpha-2, e.g. US)",
        )),
        (_, "") => None,
        (_, c) => Some(
            CountryCode::parse(c)
                .map_err(|e| row_error(line, C::Country, "missing_country", e.to_string()))?,
        ),
    };
    let last_certified_on = match h.get(cells, C::LastCertifiedOn) {
        "" => None,
        d => {
            let date = lifecert_domain::parse_date(d)
                .map_err(|e| row_error(line, C::LastCertifiedOn, "invalid_date", e.to_string()))?;
            if date > today {
                return Err(row_error(
                    line,
                    C::LastCertifiedOn,
                    "invalid_date",
                    format!("{date} is in the future"),
                ));
            }
            if date < birth_date {
                return Err(row_error(
                    line,
                    C::LastCertifiedOn,
                    "invalid_date",
                    format!("{date} is before the birth date ({birth_date})"),
                ));
            }
            Some(date)
        }
    };
    let paid_through = match h.get(cells, C::PaidThrough) {
        "" => None,
        m => Some(
            YearMonth::parse(m)
                .map_err(|e| row_error(line, C::PaidThrough, "invalid_date", e.to_string()))?,
        ),
    };
    Ok(ValidRow {
        line,
        id,
        birth_date,
        gender,
        name: name.to_string(),
        insurance_type,
        region,
        benefit_start,
        monthly,
        phone,
        residence,
        country,
        last_certified_on,
        paid_through,
    })
}

/// Rows of a CSV or XLSX file, as text cells with their line numbers.
enum Source {
    Csv {
        reader: csv::Reader<std::fs::File>,
        record: csv::ByteRecord,
        lines: LineCounter,
        total: u64,
    },
    Xlsx {
        rows: std::vec::IntoIter<(u64, Vec<String>)>,
        total: u64,
    },
}

type SourceRow = std::result::Result<(u64, Vec<String>), RowError>;

/// Line numbers for error messages. The csv crate reports a record's position as the
/// end of the record before it, which is off after blank lines and with CRLF endings
/// (rust-csv #208, #395); so the file is read a second time alongside, and the blank
/// line breaks at that position are skipped to reach the record's real first line.
struct LineCounter {
    file: std::io::BufReader<std::fs::File>,
    offset: u64,
    line: u64,
}

impl LineCounter {
    fn open(path: &Path) -> std::io::Result<LineCounter> {
        Ok(LineCounter {
            file: std::io::BufReader::new(std::fs::File::open(path)?),
            offset: 0,
            line: 1,
        })
    }

    /// The line on which the record reported at byte `at` really starts. Calls come
    /// with increasing `at`, so the file is read once.
    fn line_of(&mut self, at: u64) -> u64 {
        use std::io::BufRead;
        let mut skipping = false;
        loop {
            let Ok(buf) = self.file.fill_buf() else {
                return self.line;
            };
            if buf.is_empty() {
                return self.line;
            }
            let mut used = 0;
            let mut done = false;
            for b in buf {
                if self.offset + used as u64 >= at {
                    skipping = true;
                }
                if skipping && *b != b'\n' && *b != b'\r' {
                    done = true;
                    break;
                }
                if *b == b'\n' {
                    self.line += 1;
                }
                used += 1;
            }
            self.file.consume(used);
            self.offset += used as u64;
            if done {
                return self.line;
            }
        }
    }
}

impl Source {
    fn open(path: &Path) -> Result<(Source, Vec<String>)> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let io_err = |e: &dyn std::fmt::Display| {
            AppError::Io(format!("cannot read {}: {e}", path.display()))
        };
        if matches!(ext.as_str(), "xlsx" | "xlsm" | "xls" | "xlsb" | "ods") {
            return open_xlsx(path);
        }
        let total = std::fs::metadata(path).map_err(|e| io_err(&e))?.len();
        let file = std::fs::File::open(path).map_err(|e| io_err(&e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(file);
        let mut record = csv::ByteRecord::new();
        if !reader
            .read_byte_record(&mut record)
            .map_err(|e| io_err(&e))?
        {
            return Err(AppError::invalid(
                "header",
                "the file is empty: the first line must name the columns",
            ));
        }
        let header = record
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let lines = LineCounter::open(path).map_err(|e| io_err(&e))?;
        Ok((
            Source::Csv {
                reader,
                record,
                lines,
                total,
            },
            header,
        ))
    }

    fn next_row(&mut self) -> Option<SourceRow> {
        match self {
            Source::Csv {
                reader,
                record,
                lines,
                ..
            } => loop {
                match reader.read_byte_record(record) {
                    Ok(false) => return None,
                    Ok(true) => {
                        let line = lines.line_of(record.position().map(|p| p.byte()).unwrap_or(0));
                        if record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
                            continue;
                        }
                        let cells: std::result::Result<Vec<String>, _> = record
                            .iter()
                            .map(|c| std::str::from_utf8(c).map(str::to_string))
                            .collect();
                        return Some(cells.map(|c| (line, c)).map_err(|_| RowError {
                            line,
                            field: String::new(),
                            code: "invalid_encoding",
                            message: "the line is not UTF-8 text: save the file as \"CSV UTF-8\" (the file may be GBK)".to_string(),
                        }));
                    }
                    Err(e) => {
                        let line = lines.line_of(e.position().map(|p| p.byte()).unwrap_or(0));
                        return Some(Err(RowError {
                            line,
                            field: String::new(),
                            code: "invalid_csv",
                            message: format!("the line cannot be read as CSV: {e}"),
                        }));
                    }
                }
            },
            Source::Xlsx { rows, .. } => rows.next().map(Ok),
        }
    }

    fn progress(&self) -> (u64, u64) {
        match self {
            Source::Csv { reader, total, .. } => (reader.position().byte(), *total),
            Source::Xlsx { rows, total } => (total - rows.len() as u64, *total),
        }
    }
}

fn open_xlsx(path: &Path) -> Result<(Source, Vec<String>)> {
    use calamine::{open_workbook_auto, Data, Reader};
    let fail = |e: &dyn std::fmt::Display| {
        AppError::Io(format!("cannot read spreadsheet {}: {e}", path.display()))
    };
    let mut book = open_workbook_auto(path).map_err(|e| fail(&e))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| AppError::invalid("header", "the workbook has no sheets"))?
        .map_err(|e| fail(&e))?;
    let first_line = range.start().map(|(r, _)| u64::from(r) + 1).unwrap_or(1);
    let cell_text = |d: &Data| -> String {
        match d {
            Data::Empty => String::new(),
            Data::String(s) => s.clone(),
            Data::Int(i) => i.to_string(),
            Data::Float(f) => f.to_string(),
            Data::Bool(b) => b.to_string(),
            Data::DateTime(dt) => dt
                .as_datetime()
                .map(|t| t.date().format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
            Data::Error(e) => format!("#{e:?}"),
        }
    };
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| {
            AppError::invalid(
                "header",
                "the sheet is empty: the first row must name the columns",
            )
        })?
        .iter()
        .map(cell_text)
        .collect();
    let month_columns: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            matches!(
                Column::from_header(h),
                Some(Column::BenefitStart | Column::PaidThrough)
            )
        })
        .map(|(i, _)| i)
        .collect();
    let data: Vec<(u64, Vec<String>)> = rows
        .enumerate()
        .map(|(i, r)| {
            let cells = r
                .iter()
                .enumerate()
                .map(|(col, d)| {
                    let text = cell_text(d);
                    // A month typed into Excel becomes a date on the 1st: keep YYYY-MM.
                    if matches!(d, Data::DateTime(_)) && month_columns.contains(&col) {
                        text.chars().take(7).collect()
                    } else {
                        text
                    }
                })
                .collect::<Vec<_>>();
            (first_line + 1 + i as u64, cells)
        })
        .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
        .collect();
    let total = data.len() as u64;
    Ok((
        Source::Xlsx {
            rows: data.into_iter(),
            total,
        },
        header,
    ))
}

/// Rows validated per transaction: large enough to amortise the commit, small enough
/// that an interrupted import loses little work.
const IMPORT_BATCH: usize = 20_000;

/// A batch ready to write: validated, encrypted and indexed.
struct PreparedBatch {
    rows: Vec<(u64, RecipientImport)>,
    progress: ImportProgress,
}

/// What reading the file found, apart from what was written.
#[derive(Default)]
struct ReadSummary {
    rows: u64,
    rejected: u64,
    errors: Vec<RowError>,
}

/// Reads, validates and encrypts the file batch by batch on a blocking thread; the
/// caller writes each batch while the next one is being prepared. Stops early if the
/// writer has gone (it failed).
fn read_and_prepare(
    app: App,
    mut source: Source,
    header: Header,
    today: NaiveDate,
    batches: tokio::sync::mpsc::Sender<PreparedBatch>,
) -> ReadSummary {
    let mut summary = ReadSummary::default();
    let mut seen: HashSet<NationalId> = HashSet::new();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut finished = false;
    while !finished {
        match source.next_row() {
            None => finished = true,
            Some(row) => {
                summary.rows += 1;
                match row.and_then(|(line, cells)| {
                    validate(&header, &cells, line, today, app.id_scheme())
                }) {
                    Ok(valid) => {
                        if seen.insert(valid.id.clone()) {
                            batch.push((valid.line, app.to_import(&valid)));
                        } else {
                            summary.rejected += 1;
                            summary.errors.push(row_error(
                                valid.line,
                                Column::IdNumber,
                                "duplicate_in_file",
                                format!(
                                    "ID number {} appears earlier in the file; only the first row with it is used",
                                    valid.id.masked()
                                ),
                            ));
                        }
                    }
                    Err(e) => {
                        summary.rejected += 1;
                        summary.errors.push(e);
                    }
                }
            }
        }
        if batch.len() >= IMPORT_BATCH || finished {
            let (done, total) = source.progress();
            let prepared = PreparedBatch {
                rows: std::mem::replace(&mut batch, Vec::with_capacity(IMPORT_BATCH)),
                progress: ImportProgress {
                    done,
                    total,
                    rows: summary.rows,
                },
            };
            if batches.blocking_send(prepared).is_err() {
                break;
            }
        }
    }
    summary
}

impl App {
    #[tracing::instrument(skip_all)]
    pub async fn import_recipients(
        &self,
        actor: &Actor,
        path: &Path,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport> {
        let (source, header_cells) = Source::open(path)?;
        let header = Header::parse(&header_cells, self.id_scheme())?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut report = ImportReport {
            ignored_columns: header.ignored.clone(),
            ..ImportReport::default()
        };
        // Two batches in flight: one being written, one being prepared.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
        let app = self.clone();
        let today = self.today();
        let reader = tokio::task::spawn_blocking(move || {
            read_and_prepare(app, source, header, today, sender)
        });
        let mut written = Ok(());
        while let Some(batch) = receiver.recv().await {
            written = self
                .store_batch(actor, &file_name, batch.rows, &mut report)
                .await;
            if written.is_err() {
                break;
            }
            progress(batch.progress);
        }
        drop(receiver);
        let summary = reader
            .await
            .map_err(|e| AppError::Io(format!("the import stopped unexpectedly: {e}")))?;
        written?;
        report.rows = summary.rows;
        report.rejected = summary.rejected;
        report.errors = summary.errors;
        report.errors.sort_by_key(|e| e.line);
        Ok(report)
    }

    fn digest_of(&self, r: &ValidRow) -> Vec<u8> {
        let fen = r.monthly.get().to_string();
        let last = r.last_certified_on.map(date_str).unwrap_or_default();
        let paid = r.paid_through.map(|m| m.to_string()).unwrap_or_default();
        let start = r.benefit_start.to_string();
        // Derived from a GB 11643 number, so left out there: digests of rolls imported
        // before the columns existed stay the same.
        let (birth, gender) = if self.id_scheme().id_carries_birth_date() {
            (String::new(), "")
        } else {
            (date_str(r.birth_date), r.gender.as_str())
        };
        self.keys
            .digest(&[
                r.id.as_str().as_bytes(),
                r.name.as_bytes(),
                r.insurance_type.as_str().as_bytes(),
                r.region.as_str().as_bytes(),
                start.as_bytes(),
                fen.as_bytes(),
                r.phone.as_deref().unwrap_or("").as_bytes(),
                r.residence.as_str().as_bytes(),
                r.country
                    .map(|c| c.to_string())
                    .unwrap_or_default()
                    .as_bytes(),
                last.as_bytes(),
                paid.as_bytes(),
                birth.as_bytes(),
                gender.as_bytes(),
            ])
            .to_vec()
    }

    async fn store_batch(
        &self,
        actor: &Actor,
        file_name: &str,
        rows: Vec<(u64, RecipientImport)>,
        report: &mut ImportReport,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = self.now_string();
        let mut tx = self.store.begin_write().await?;
        let bidxs: Vec<&[u8]> = rows.iter().map(|(_, r)| r.id_bidx.as_slice()).collect();
        let existing: HashMap<Vec<u8>, lifecert_store::ImportExisting> = tx
            .existing_for_import(&bidxs)
            .await?
            .into_iter()
            .map(|e| (e.id_bidx.clone(), e))
            .collect();
        let mut new_rows = Vec::new();
        let mut new_lines = HashMap::new();
        for (line, mut row) in rows {
            match existing.get(&row.id_bidx) {
                Some(e) if e.import_digest.as_deref() == Some(row.import_digest.as_slice()) => {
                    report.unchanged += 1;
                }
                Some(e) => {
                    self.merge_with_stored(&mut row, e)?;
                    tx.update_recipient_import(e.id, &row, &now).await?;
                    self.audit(
                        &mut tx,
                        actor,
                        "recipient.updated",
                        Some(e.id),
                        serde_json::json!({"source": "import", "file": file_name, "line": line}),
                    );
                    report.updated += 1;
                }
                None => {
                    new_lines.insert(row.id_bidx.clone(), line);
                    new_rows.push(row);
                }
            }
        }
        // One entry per batch lists every pensioner added with the line it came from:
        // each addition is on the trail, without a million audit rows for a bulk load.
        let added: Vec<(i64, u64)> = tx
            .insert_recipients(&new_rows, &now)
            .await?
            .into_iter()
            .map(|(bidx, id)| (id, new_lines.get(&bidx).copied().unwrap_or(0)))
            .collect();
        if !added.is_empty() {
            report.inserted += added.len() as u64;
            self.audit(
                &mut tx,
                actor,
                "recipients.added",
                None,
                serde_json::json!({"source": "import", "file": file_name, "count": added.len(), "recipients_and_lines": added}),
            );
        }
        tx.commit().await?;
        Ok(())
    }

    fn to_import(&self, r: &ValidRow) -> RecipientImport {
        let birth = r.birth_date;
        let certified = r
            .last_certified_on
            .unwrap_or_else(|| r.benefit_start.first_day());
        RecipientImport {
            id_bidx: self.id_bidx(&r.id),
            name_bidx: self.name_bidx(&r.name),
            id_number_enc: self.keys.encrypt_str(Field::IdNumber, r.id.as_str()),
            name_enc: self.keys.encrypt_str(Field::Name, &r.name),
            phone_enc: r
                .phone
                .as_ref()
                .map(|p| self.keys.encrypt_str(Field::Phone, p)),
            gender: r.gender.as_str().to_string(),
            birth_date: date_str(birth),
            insurance_type: r.insurance_type.as_str().to_string(),
            region_code: r.region.as_str().to_string(),
            benefit_start: r.benefit_start.to_string(),
            monthly_amount_fen: r.monthly.get(),
            residence: r.residence.as_str().to_string(),
            country: r.country.map(|c| c.to_string()),
            last_certified_on: r.last_certified_on.map(date_str),
            next_due_on: date_str(self.policy.next_due_on(certified, birth)),
            settled_through: r.paid_through.map(|m| m.to_string()),
            import_digest: self.digest_of(r),
        }
    }

    /// A changed row never rolls back what lifecert itself recorded since: a newer
    /// certification, or months a closed payment run settled.
    fn merge_with_stored(
        &self,
        row: &mut RecipientImport,
        e: &lifecert_store::ImportExisting,
    ) -> Result<()> {
        if let Some(stored) = &e.last_certified_on {
            if row
                .last_certified_on
                .as_deref()
                .is_none_or(|new| new < stored.as_str())
            {
                row.last_certified_on = Some(stored.clone());
            }
        }
        let certified = match &row.last_certified_on {
            Some(d) => crate::parse_stored_date(d)?,
            None => parse_stored_month(&row.benefit_start)?.first_day(),
        };
        let birth = crate::parse_stored_date(&row.birth_date)?;
        row.next_due_on = date_str(self.policy.next_due_on(certified, birth));
        if let Some(stored) = &e.settled_through {
            if row
                .settled_through
                .as_deref()
                .is_none_or(|new| new < stored.as_str())
            {
                row.settled_through = Some(stored.clone());
            }
        }
        Ok(())
    }
}

/// One pensioner registered through the API, with the import's columns and rules.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct NewRecipient {
    /// In the deployment's ID scheme: `cn_resident`, the 18-character resident ID number
    /// (15-digit old numbers are converted); `generic`, 4 to 32 letters and digits.
    pub id_number: String,
    pub name: String,
    /// enterprise, institution or resident
    pub insurance_type: String,
    pub region_code: String,
    /// YYYY-MM
    pub benefit_start: String,
    /// Yuan with at most two decimals, e.g. "3567.20".
    pub monthly_amount: String,
    pub phone: Option<String>,
    pub residence: Option<String>,
    pub country: Option<String>,
    pub last_certified_on: Option<String>,
    pub paid_through: Option<String>,
    /// YYYY-MM-DD. Required with the generic ID scheme; with cn_resident it may be left
    /// out and must otherwise agree with the ID number.
    pub birth_date: Option<String>,
    /// M or F (also male/female, 男/女). Required with the generic ID scheme; with
    /// cn_resident it may be left out and must otherwise agree with the ID number.
    pub gender: Option<String>,
}

impl App {
    /// Registers one pensioner, validated exactly like an imported row. Returns the id.
    pub async fn create_recipient(
        &self,
        staff: &crate::staff::Staff,
        n: &NewRecipient,
    ) -> Result<i64> {
        crate::access::require(staff, lifecert_domain::Action::CreateRecipient)?;
        let cells: Vec<String> = [
            Some(&n.id_number),
            Some(&n.name),
            Some(&n.insurance_type),
            Some(&n.region_code),
            Some(&n.benefit_start),
            Some(&n.monthly_amount),
            n.phone.as_ref(),
            n.residence.as_ref(),
            n.country.as_ref(),
            n.last_certified_on.as_ref(),
            n.paid_through.as_ref(),
            n.birth_date.as_ref(),
            n.gender.as_ref(),
        ]
        .into_iter()
        .map(|c| c.cloned().unwrap_or_default())
        .collect();
        let header = Header {
            positions: std::array::from_fn(Some),
            ignored: Vec::new(),
        };
        let valid = validate(&header, &cells, 0, self.today(), self.id_scheme()).map_err(|e| {
            AppError::Invalid {
                field: e.field,
                message: format!("{} ({})", e.message, e.code),
            }
        })?;
        if !staff.scope.contains(valid.region.as_str()) {
            return Err(AppError::forbidden(
                "out_of_region",
                "the pensioner's region is outside yours",
            ));
        }
        let row = self.to_import(&valid);
        let mut tx = self.store.begin_write().await?;
        if !tx
            .existing_for_import(&[row.id_bidx.as_slice()])
            .await?
            .is_empty()
        {
            return Err(AppError::conflict(
                "duplicate",
                "a pensioner with this ID number is already registered",
            ));
        }
        let id = tx
            .insert_recipients(std::slice::from_ref(&row), &self.now_string())
            .await?
            .first()
            .map(|(_, id)| *id)
            .ok_or_else(|| AppError::Corrupt("the insert returned no id".into()))?;
        self.audit(
            &mut tx,
            &staff.actor(),
            "recipient.added",
            Some(id),
            serde_json::json!({"source": "api"}),
        );
        tx.commit().await?;
        Ok(id)
    }
}
