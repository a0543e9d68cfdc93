//! Deterministic synthetic pensioner roll (CSV) for `lifecert demo` and the import benchmark.
//!
//! The roll looks like a real agency export — valid GB 11643-1999 resident IDs, common
//! Chinese names that agree with the ID's gender digit, plausible benefit amounts and a
//! spread of certification dates that exercises the reminder, grace and overdue paths of a
//! 12-month validity policy — while containing no real person's data. Output is a pure
//! function of [`DemoOptions`]: the same options always give byte-identical CSV, so demos
//! and benchmarks are reproducible.
//!
//! Rows are streamed one at a time; the only state that grows with the row count is the set
//! of issued IDs (4 bytes per row plus hash-table overhead) that keeps IDs unique.

use std::collections::HashSet;
use std::io::{self, Write};

use chrono::{Datelike, NaiveDate};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Number of data rows (pensioners) to write after the header.
    pub recipients: usize,
    /// PRNG seed; the same seed and options give byte-identical output.
    pub seed: u64,
    /// The "current" date the roll is generated relative to (certification ages, paid-through month).
    pub today: NaiveDate,
}

/// Writes a header line and `opts.recipients` rows of CSV to `out`. Returns the number of rows written.
///
/// The CSV writer buffers internally, so `out` need not (and should not) be wrapped in a
/// `BufWriter`; pass a `File`, `Vec<u8>` or locked stdout directly.
///
/// # Errors
/// `InvalidInput` when `opts.today` is before 1967 or after 9999, or when `opts.recipients`
/// exceeds [`MAX_RECIPIENTS`]; otherwise any I/O error from `out`.
pub fn write_demo_csv<W: Write>(out: W, opts: &DemoOptions) -> io::Result<usize> {
    let mut generator = Generator::new(opts)?;
    let mut wtr = csv::Writer::from_writer(out);
    wtr.write_record(HEADER)?;
    let mut scratch = RowScratch::default();
    for _ in 0..opts.recipients {
        let row = generator.next_row()?;
        write_row(&mut wtr, &row, &mut scratch)?;
    }
    wtr.flush()?;
    Ok(opts.recipients)
}

/// Upper bound on `recipients`: far beyond any demo or benchmark, and it keeps the ID key
/// space (≈490 million region/birth-date/sequence combinations) sparse enough that redrawing
/// on collision always terminates quickly.
pub const MAX_RECIPIENTS: usize = 50_000_000;

const HEADER: [&str; 11] = [
    "id_number",
    "name",
    "insurance_type",
    "region_code",
    "benefit_start",
    "monthly_amount",
    "phone",
    "residence",
    "country",
    "last_certified_on",
    "paid_through",
];

/// District-level GB/T 2260 codes; spread over most provinces so region filters and
/// per-region statistics have something to show.
const REGIONS: [&str; 43] = [
    "110101", // 北京 东城
    "110102", // 北京 西城
    "110105", // 北京 朝阳
    "110108", // 北京 海淀
    "120101", // 天津 和平
    "120103", // 天津 河西
    "130102", // 石家庄 长安
    "140105", // 太原 小店
    "150102", // 呼和浩特 新城
    "210102", // 沈阳 和平
    "210202", // 大连 中山
    "220102", // 长春 南关
    "230103", // 哈尔滨 南岗
    "310101", // 上海 黄浦
    "310104", // 上海 徐汇
    "310115", // 上海 浦东新区
    "320102", // 南京 玄武
    "320506", // 苏州 吴中
    "330106", // 杭州 西湖
    "330203", // 宁波 海曙
    "340104", // 合肥 蜀山
    "350102", // 福州 鼓楼
    "350203", // 厦门 思明
    "360102", // 南昌 东湖
    "370102", // 济南 历下
    "370202", // 青岛 市南
    "410105", // 郑州 金水
    "420106", // 武汉 武昌
    "430104", // 长沙 岳麓
    "440106", // 广州 天河
    "440305", // 深圳 南山
    "450103", // 南宁 青秀
    "460105", // 海口 秀英
    "500103", // 重庆 渝中
    "510107", // 成都 武侯
    "520102", // 贵阳 南明
    "530102", // 昆明 五华
    "540102", // 拉萨 城关
    "610113", // 西安 雁塔
    "620102", // 兰州 城关
    "630102", // 西宁 城东
    "640104", // 银川 兴庆
    "650102", // 乌鲁木齐 天山
];

/// Surnames with approximate frequencies per 100,000 people (national census orders of
/// magnitude); the compound surnames are deliberately rare.
const SURNAMES: [(&str, u32); 103] = [
    ("王", 7100),
    ("李", 7000),
    ("张", 6700),
    ("刘", 5400),
    ("陈", 4600),
    ("杨", 3100),
    ("黄", 2400),
    ("赵", 2300),
    ("吴", 2000),
    ("周", 1900),
    ("徐", 1500),
    ("孙", 1500),
    ("马", 1400),
    ("朱", 1300),
    ("胡", 1300),
    ("郭", 1200),
    ("何", 1200),
    ("高", 1200),
    ("林", 1100),
    ("罗", 1100),
    ("郑", 1000),
    ("梁", 900),
    ("谢", 800),
    ("宋", 800),
    ("唐", 800),
    ("许", 700),
    ("韩", 700),
    ("冯", 700),
    ("邓", 700),
    ("曹", 600),
    ("彭", 600),
    ("曾", 600),
    ("肖", 600),
    ("田", 500),
    ("董", 500),
    ("袁", 500),
    ("潘", 500),
    ("于", 500),
    ("蒋", 500),
    ("蔡", 500),
    ("余", 500),
    ("杜", 400),
    ("叶", 400),
    ("程", 400),
    ("苏", 400),
    ("魏", 400),
    ("吕", 400),
    ("丁", 400),
    ("任", 400),
    ("沈", 350),
    ("姚", 350),
    ("卢", 350),
    ("姜", 350),
    ("崔", 350),
    ("钟", 300),
    ("谭", 300),
    ("陆", 300),
    ("汪", 300),
    ("范", 300),
    ("金", 300),
    ("石", 300),
    ("廖", 300),
    ("贾", 300),
    ("夏", 300),
    ("韦", 280),
    ("付", 280),
    ("方", 280),
    ("白", 270),
    ("邹", 270),
    ("孟", 270),
    ("熊", 260),
    ("秦", 260),
    ("邱", 250),
    ("江", 250),
    ("尹", 240),
    ("薛", 240),
    ("闫", 230),
    ("段", 230),
    ("雷", 220),
    ("侯", 220),
    ("龙", 210),
    ("史", 210),
    ("陶", 200),
    ("黎", 200),
    ("贺", 200),
    ("顾", 200),
    ("毛", 200),
    ("郝", 200),
    ("龚", 190),
    ("邵", 190),
    ("万", 180),
    ("钱", 180),
    ("严", 170),
    ("覃", 170),
    ("武", 170),
    ("戴", 170),
    ("莫", 160),
    ("孔", 160),
    ("向", 160),
    ("汤", 150),
    ("欧阳", 60),
    ("司马", 3),
    ("诸葛", 2),
];

/// Given-name characters typical for men born 1936–1966.
const MALE_GIVEN: [&str; 33] = [
    "建", "国", "华", "明", "军", "伟", "平", "强", "文", "志", "德", "福", "荣", "林", "海", "生",
    "杰", "忠", "成", "富", "贵", "祥", "宝", "勇", "刚", "新", "红", "春", "庆", "兴", "永", "金",
    "长",
];

/// Given-name characters typical for women born 1936–1966 (华 and 红 are used for both).
const FEMALE_GIVEN: [&str; 30] = [
    "秀", "英", "兰", "芳", "玉", "珍", "桂", "华", "凤", "霞", "梅", "琴", "丽", "淑", "敏", "静",
    "萍", "红", "燕", "云", "莲", "芬", "娟", "翠", "素", "月", "美", "玲", "香", "荣",
];

/// Mobile prefixes (13x/15x/17x/18x/19x) actually allocated to carriers.
const PHONE_PREFIXES: [u32; 32] = [
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    176, 177, 178, 180, 181, 182, 183, 186, 187, 188, 189, 198, 199,
];

const COUNTRIES: [&str; 10] = ["US", "CA", "AU", "JP", "SG", "NZ", "GB", "DE", "FR", "KR"];

/// Per mille of rows that are recent retirees never certified yet (empty `last_certified_on`).
///
/// An empty value means "treat as certified on the first day of the benefit start month";
/// for a long-retired pensioner that would silently make them long overdue, so empties are
/// only given to people whose benefit started within the last [`RECENT_MONTHS`] months.
const RECENT_PER_MILLE: u64 = 10;
const RECENT_MONTHS: u64 = 10;

/// Certification-age bands for everyone else, as (relative weight, min days ago, max days ago).
/// Margins of a couple of days at the 12- and 13-month edges keep each band on the same side
/// of the anniversary and of the 30-day grace end whether the policy counts 365 days or
/// 12 calendar months, leap years included.
const CERT_BANDS: [(u64, i32, i32); 4] = [
    (68, 0, 289),   // current: certified within the last 9.5 months
    (17, 290, 363), // due soon: inside the 60/30/7-day reminder windows before the anniversary
    (6, 367, 393),  // overdue but inside the 30-day grace period
    (4, 397, 608),  // long overdue: 13–20 months ago
];

const BIRTH_FIRST: (i32, u32, u32) = (1936, 1, 1);
const BIRTH_LAST: (i32, u32, u32) = (1966, 12, 31);

/// Retirement ages that apply: men 60, women 55 (institution) or 50 (enterprise / resident).
const RETIREMENT_AGES: [i32; 3] = [60, 55, 50];

/// Pension scheme, which fixes the women's retirement age and the benefit range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsuranceType {
    Enterprise,
    Institution,
    Resident,
}

impl InsuranceType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InsuranceType::Enterprise => "enterprise",
            InsuranceType::Institution => "institution",
            InsuranceType::Resident => "resident",
        }
    }

    /// Inclusive monthly benefit range in fen (0.01 yuan).
    fn amount_range_fen(self) -> (u32, u32) {
        match self {
            InsuranceType::Enterprise => (220_000, 650_000),
            InsuranceType::Institution => (450_000, 950_000),
            InsuranceType::Resident => (15_000, 45_000),
        }
    }

    /// Index into [`RETIREMENT_AGES`].
    fn retirement_age_index(self, male: bool) -> usize {
        match (male, self) {
            (true, _) => 0,
            (false, InsuranceType::Institution) => 1,
            (false, _) => 2,
        }
    }
}

/// One generated pensioner, before CSV formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DemoRow {
    /// Region part of the ID number (also the usual insured region).
    pub(crate) id_region: &'static str,
    pub(crate) birth_date: NaiveDate,
    /// ID sequence number 1..=999; odd for men, even for women.
    pub(crate) sequence: u16,
    pub(crate) surname: &'static str,
    /// One or two characters; the second is `""` for one-character given names.
    pub(crate) given_name: [&'static str; 2],
    pub(crate) insurance_type: InsuranceType,
    pub(crate) insured_region: &'static str,
    /// First day of the benefit start month.
    pub(crate) benefit_start: NaiveDate,
    /// Monthly benefit in fen (0.01 yuan).
    pub(crate) monthly_amount_fen: u32,
    pub(crate) phone: Option<[u8; 11]>,
    /// `Some` for pensioners living abroad (ISO 3166 alpha-2), `None` when domestic.
    pub(crate) country: Option<&'static str>,
    pub(crate) last_certified_on: Option<NaiveDate>,
    /// First day of the month benefits have been paid up to.
    pub(crate) paid_through: NaiveDate,
}

impl DemoRow {
    /// The 18-character resident ID number (ASCII).
    pub(crate) fn id_number(&self) -> [u8; 18] {
        let mut first17 = [b'0'; 17];
        for (dst, src) in first17.iter_mut().zip(self.id_region.bytes()) {
            *dst = src;
        }
        put_digits(&mut first17[6..10], self.birth_date.year().unsigned_abs());
        put_digits(&mut first17[10..12], self.birth_date.month());
        put_digits(&mut first17[12..14], self.birth_date.day());
        put_digits(&mut first17[14..17], u32::from(self.sequence));
        let mut id = [0u8; 18];
        id[..17].copy_from_slice(&first17);
        id[17] = check_character(&first17);
        id
    }

    pub(crate) fn write_name(&self, buf: &mut String) {
        buf.clear();
        buf.push_str(self.surname);
        buf.push_str(self.given_name[0]);
        buf.push_str(self.given_name[1]);
    }
}

/// The GB 11643-1999 check character for the first 17 digits of an 18-character ID.
fn check_character(first17: &[u8; 17]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(&digit, weight)| u32::from(digit.wrapping_sub(b'0')) * weight)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// SplitMix64: tiny, fast, well mixed for any seed (0 included), and fixed forever so
/// generated rolls stay byte-identical across releases.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`) by multiply-shift; the bias is below n / 2^64, far
    /// under anything a demo roll could show.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Streaming row source; `write_demo_csv` is a thin formatting loop around it.
pub(crate) struct Generator {
    rng: SplitMix64,
    today_day: i32,
    today_month: i32,
    birth_first_day: i32,
    birth_last_day: i32,
    /// Latest birth day (days from CE) whose retirement month precedes today's month, per
    /// entry of [`RETIREMENT_AGES`]; keeps not-yet-retired people off the roll.
    latest_birth_day: [i32; 3],
    surname_cumulative: Vec<u32>,
    paid_through: NaiveDate,
    /// Packed (region, birth date, sequence) of every ID issued so far.
    issued: HashSet<u32>,
}

impl Generator {
    pub(crate) fn new(opts: &DemoOptions) -> io::Result<Self> {
        let today = opts.today;
        if !(1967..=9999).contains(&today.year()) {
            return Err(invalid_input(
                "demo roll `today` must be between 1967 and 9999",
            ));
        }
        if opts.recipients > MAX_RECIPIENTS {
            return Err(invalid_input(
                "demo roll is limited to 50,000,000 recipients",
            ));
        }
        let day = |(y, m, d): (i32, u32, u32)| {
            NaiveDate::from_ymd_opt(y, m, d)
                .map(|date| date.num_days_from_ce())
                .ok_or_else(date_out_of_range)
        };
        let birth_first_day = day(BIRTH_FIRST)?;
        let birth_last_day = day(BIRTH_LAST)?;
        let today_month = month_index(today);
        let mut latest_birth_day = [birth_last_day; 3];
        for (latest, age) in latest_birth_day.iter_mut().zip(RETIREMENT_AGES) {
            // Benefits start the month after the retirement birthday, so the birthday month
            // must be before today's month for the start to be no later than today's month.
            let bound = last_day_of_month(today_month - 1 - 12 * age)?.num_days_from_ce();
            // With an early `today` nobody in the birth window has retired yet; keep the
            // window and let benefit_start clamp to today's month instead.
            if bound >= birth_first_day {
                *latest = bound.min(birth_last_day);
            }
        }
        let mut total = 0;
        let surname_cumulative = SURNAMES
            .iter()
            .map(|&(_, weight)| {
                total += weight;
                total
            })
            .collect();
        Ok(Generator {
            rng: SplitMix64(opts.seed),
            today_day: today.num_days_from_ce(),
            today_month,
            birth_first_day,
            birth_last_day,
            latest_birth_day,
            surname_cumulative,
            paid_through: first_day_of_month(today_month - 1)?,
            issued: HashSet::with_capacity(opts.recipients),
        })
    }

    pub(crate) fn next_row(&mut self) -> io::Result<DemoRow> {
        let insurance_type = match self.rng.below(10) {
            0..=6 => InsuranceType::Enterprise,
            7 => InsuranceType::Institution,
            _ => InsuranceType::Resident,
        };
        let recent = self.rng.below(1000) < RECENT_PER_MILLE;
        // With births capped at 1966, only men reach retirement age in the 2020s, so recent
        // retirees are men.
        let male = recent || self.rng.below(100) < 48;
        let age_index = insurance_type.retirement_age_index(male);
        let age = RETIREMENT_AGES[age_index];

        let mut benefit_month_override = None;
        let (region, birth_day, sequence) = if recent {
            let benefit_month = self.today_month - self.rng.below(RECENT_MONTHS) as i32;
            let birth_month = benefit_month - 1 - 12 * age;
            let first = first_day_of_month(birth_month)?.num_days_from_ce();
            let last = last_day_of_month(birth_month)?.num_days_from_ce();
            if first >= self.birth_first_day && last <= self.birth_last_day {
                self.draw_identity(first, last, false, male)
            } else {
                // `today` is far enough from 2026 that nobody born 1936–1966 retired in the
                // last months; keep the row an uncertified recent retiree anyway by setting
                // its benefit start directly, at the cost of the age rule for this row.
                benefit_month_override = Some(benefit_month);
                self.draw_identity(self.birth_first_day, self.birth_last_day, true, male)
            }
        } else {
            self.draw_identity(
                self.birth_first_day,
                self.latest_birth_day[age_index],
                true,
                male,
            )
        };
        let birth_date =
            NaiveDate::from_num_days_from_ce_opt(birth_day).ok_or_else(date_out_of_range)?;
        let benefit_month = match benefit_month_override {
            // Never before the person was born, however odd `today` is.
            Some(month) => month.max(month_index(birth_date) + 1),
            None => month_index(birth_date) + 12 * age + 1,
        }
        .min(self.today_month);
        let benefit_start = first_day_of_month(benefit_month)?;

        let surname = self.surname();
        let given_name = self.given_name(male);

        let insured_region = if self.rng.below(10) < 8 {
            REGIONS[region]
        } else {
            // Any other region: skip over the ID's own.
            let other = self.rng.below(REGIONS.len() as u64 - 1) as usize;
            REGIONS[if other >= region { other + 1 } else { other }]
        };

        // Sum of two uniforms: amounts cluster mid-range like real benefits do.
        let (lo, hi) = insurance_type.amount_range_fen();
        let monthly_amount_fen =
            lo + (self.rng.between(0, hi - lo) + self.rng.between(0, hi - lo)) / 2;

        let phone = if self.rng.below(100) < 85 {
            let mut phone = [0u8; 11];
            put_digits(&mut phone[..3], self.rng.pick(&PHONE_PREFIXES));
            put_digits(&mut phone[3..], self.rng.between(0, 99_999_999));
            Some(phone)
        } else {
            None
        };

        let country = if self.rng.below(100) < 1 {
            Some(self.rng.pick(&COUNTRIES))
        } else {
            None
        };

        let last_certified_on = if recent {
            None
        } else {
            let total: u64 = CERT_BANDS.iter().map(|band| band.0).sum();
            let mut roll = self.rng.below(total);
            let mut days_ago = 0;
            for &(weight, min, max) in &CERT_BANDS {
                if roll < weight {
                    days_ago = min + self.rng.below((max - min + 1) as u64) as i32;
                    break;
                }
                roll -= weight;
            }
            // People who retired recently cannot have certified before their benefit started;
            // their onboarding counts as the first certification.
            let day = (self.today_day - days_ago).max(benefit_start.num_days_from_ce());
            Some(NaiveDate::from_num_days_from_ce_opt(day).ok_or_else(date_out_of_range)?)
        };

        Ok(DemoRow {
            id_region: REGIONS[region],
            birth_date,
            sequence,
            surname,
            given_name,
            insurance_type,
            insured_region,
            benefit_start,
            monthly_amount_fen,
            phone,
            country,
            last_certified_on,
            paid_through: self.paid_through,
        })
    }

    /// Draws (region index, birth day, sequence) with the birth day in `first..=last` and a
    /// sequence of the right parity, redrawing until the resulting ID is new. With
    /// `favour_younger`, half the draws take the later of two birth days, so the roll thins
    /// out towards age 90 as a real one does.
    fn draw_identity(
        &mut self,
        first: i32,
        last: i32,
        favour_younger: bool,
        male: bool,
    ) -> (usize, i32, u16) {
        let span = (last - first + 1) as u64;
        loop {
            let region = self.rng.below(REGIONS.len() as u64) as usize;
            let mut back = self.rng.below(span);
            if favour_younger && self.rng.below(2) == 0 {
                back = back.min(self.rng.below(span));
            }
            let birth_day = last - back as i32;
            let sequence = if male {
                self.rng.below(500) as u16 * 2 + 1
            } else {
                (self.rng.below(499) as u16 + 1) * 2
            };
            // region < 64 (6 bits), days since 1936-01-01 < 16384 (14 bits), sequence < 1024 (10 bits).
            let key = (region as u32) << 24
                | ((birth_day - self.birth_first_day) as u32) << 10
                | u32::from(sequence);
            if self.issued.insert(key) {
                return (region, birth_day, sequence);
            }
        }
    }

    fn surname(&mut self) -> &'static str {
        let total = self.surname_cumulative.last().copied().unwrap_or(0);
        let roll = self.rng.below(u64::from(total)) as u32;
        let index = self
            .surname_cumulative
            .partition_point(|&cumulative| cumulative <= roll);
        SURNAMES.get(index).map_or("王", |&(surname, _)| surname)
    }

    fn given_name(&mut self, male: bool) -> [&'static str; 2] {
        let chars: &[&'static str] = if male { &MALE_GIVEN } else { &FEMALE_GIVEN };
        let first = self.rng.pick(chars);
        if self.rng.below(10) < 3 {
            return [first, ""];
        }
        // Repeated characters (红红) exist but are uncommon in this generation.
        let mut second = self.rng.pick(chars);
        while second == first {
            second = self.rng.pick(chars);
        }
        [first, second]
    }
}

/// Buffers reused across rows so that writing a row allocates nothing.
#[derive(Default)]
struct RowScratch {
    name: String,
}

fn write_row<W: Write>(
    wtr: &mut csv::Writer<W>,
    row: &DemoRow,
    scratch: &mut RowScratch,
) -> io::Result<()> {
    row.write_name(&mut scratch.name);
    let id = row.id_number();
    let benefit_start = format_month(row.benefit_start);
    let mut amount_buf = [0u8; 16];
    let amount = format_amount(row.monthly_amount_fen, &mut amount_buf);
    let certified = row.last_certified_on.map(format_date);
    let paid_through = format_month(row.paid_through);
    wtr.write_record([
        &id[..],
        scratch.name.as_bytes(),
        row.insurance_type.as_str().as_bytes(),
        row.insured_region.as_bytes(),
        &benefit_start[..],
        amount,
        row.phone.as_ref().map_or(&[][..], |phone| &phone[..]),
        if row.country.is_some() {
            b"abroad"
        } else {
            b"domestic"
        },
        row.country.unwrap_or("").as_bytes(),
        certified.as_ref().map_or(&[][..], |date| &date[..]),
        &paid_through[..],
    ])?;
    Ok(())
}

/// Writes `value` as zero-padded decimal filling all of `dst` (higher digits are dropped).
fn put_digits(dst: &mut [u8], mut value: u32) {
    for digit in dst.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM`; years are 1936..=9999 here, so four digits always suffice.
fn format_month(date: NaiveDate) -> [u8; 7] {
    let mut out = *b"0000-00";
    put_digits(&mut out[..4], date.year().unsigned_abs());
    put_digits(&mut out[5..], date.month());
    out
}

/// `YYYY-MM-DD`.
fn format_date(date: NaiveDate) -> [u8; 10] {
    let mut out = *b"0000-00-00";
    put_digits(&mut out[..4], date.year().unsigned_abs());
    put_digits(&mut out[5..7], date.month());
    put_digits(&mut out[8..], date.day());
    out
}

/// Yuan with exactly two decimals, e.g. 356720 fen -> `3567.20`.
fn format_amount(fen: u32, buf: &mut [u8; 16]) -> &[u8] {
    let mut start = buf.len() - 3;
    put_digits(&mut buf[start + 1..], fen % 100);
    buf[start] = b'.';
    let mut yuan = fen / 100;
    loop {
        start -= 1;
        buf[start] = b'0' + (yuan % 10) as u8;
        yuan /= 10;
        if yuan == 0 {
            break;
        }
    }
    &buf[start..]
}

/// Months since year 0, so month arithmetic is plain integer arithmetic.
fn month_index(date: NaiveDate) -> i32 {
    date.year() * 12 + date.month0() as i32
}

fn first_day_of_month(index: i32) -> io::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
        .ok_or_else(date_out_of_range)
}

fn last_day_of_month(index: i32) -> io::Result<NaiveDate> {
    first_day_of_month(index + 1)?
        .pred_opt()
        .ok_or_else(date_out_of_range)
}

fn invalid_input(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn date_out_of_range() -> io::Error {
    invalid_input("demo roll date out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    fn opts(recipients: usize, seed: u64, today: NaiveDate) -> DemoOptions {
        DemoOptions {
            recipients,
            seed,
            today,
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn csv_bytes(opts: &DemoOptions) -> Vec<u8> {
        let mut out = Vec::new();
        let written = write_demo_csv(&mut out, opts).unwrap();
        assert_eq!(written, opts.recipients);
        out
    }

    fn rows(opts: &DemoOptions) -> Vec<DemoRow> {
        let mut generator = Generator::new(opts).unwrap();
        (0..opts.recipients)
            .map(|_| generator.next_row().unwrap())
            .collect()
    }

    fn parse_month(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").unwrap()
    }

    #[test]
    fn check_character_matches_published_examples() {
        for id in [
            "11010519491231002X",
            "440524188001010014",
            "110101199003074477",
        ] {
            let bytes = id.as_bytes();
            let first17: [u8; 17] = bytes[..17].try_into().unwrap();
            assert_eq!(check_character(&first17), bytes[17], "{id}");
        }
    }

    #[test]
    fn output_is_deterministic_per_seed() {
        let today = date(2026, 3, 15);
        let a = csv_bytes(&opts(500, 7, today));
        assert_eq!(a, csv_bytes(&opts(500, 7, today)));
        assert_ne!(a, csv_bytes(&opts(500, 8, today)));
    }

    #[test]
    fn header_is_exact_and_empty_roll_has_only_header() {
        let out = csv_bytes(&opts(0, 1, date(2026, 3, 15)));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,residence,country,last_certified_on,paid_through\n"
        );
    }

    #[test]
    fn rejects_unsupported_options() {
        let err = write_demo_csv(Vec::new(), &opts(1, 1, date(1960, 1, 1))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err =
            write_demo_csv(Vec::new(), &opts(MAX_RECIPIENTS + 1, 1, date(2026, 1, 1))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn static_tables_are_well_formed() {
        for code in REGIONS {
            assert!(
                code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
                "{code}"
            );
        }
        let unique: std::collections::HashSet<_> = REGIONS.iter().collect();
        assert_eq!(unique.len(), REGIONS.len());
        assert!(
            REGIONS.len() < 64,
            "region index must fit the 6 bits of the uniqueness key"
        );
        let surnames: std::collections::HashSet<_> = SURNAMES.iter().map(|s| s.0).collect();
        assert_eq!(surnames.len(), SURNAMES.len());
        for prefix in PHONE_PREFIXES {
            assert!((130..200).contains(&prefix));
        }
    }

    /// Field-by-field validation of a 2,000-row roll, cross-checked against the generated rows.
    #[test]
    fn rows_are_valid_and_consistent() {
        let today = date(2026, 3, 15);
        let options = opts(2_000, 42, today);
        let generated = rows(&options);
        let bytes = csv_bytes(&options);
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), HEADER);

        let mut ids = std::collections::HashSet::new();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut records = 0;
        for (record, row) in reader.records().zip(&generated) {
            let record = record.unwrap();
            records += 1;
            let field = |name: &str| {
                let index = HEADER.iter().position(|h| *h == name).unwrap();
                record.get(index).unwrap().to_owned()
            };

            // ID: format, check character, uniqueness, birth date, region.
            let id = field("id_number");
            assert_eq!(id.as_bytes(), &row.id_number()[..]);
            assert_eq!(id.len(), 18, "{id}");
            assert!(id.as_bytes()[..17].iter().all(u8::is_ascii_digit), "{id}");
            let first17: [u8; 17] = id.as_bytes()[..17].try_into().unwrap();
            assert_eq!(check_character(&first17), id.as_bytes()[17], "{id}");
            assert!(ids.insert(id.clone()), "duplicate {id}");
            assert!(REGIONS.contains(&&id[..6]), "{id}");
            let birth = NaiveDate::parse_from_str(&id[6..14], "%Y%m%d").unwrap();
            assert_eq!(birth, row.birth_date);
            assert!(
                birth >= date(1936, 1, 1) && birth <= date(1966, 12, 31),
                "{id}"
            );

            // Name: surname from the table, given name from the list matching the ID's gender digit.
            let male = (id.as_bytes()[16] - b'0') % 2 == 1;
            assert_eq!(male, row.sequence % 2 == 1);
            let mut name = String::new();
            row.write_name(&mut name);
            assert_eq!(field("name"), name);
            assert!(SURNAMES.iter().any(|s| s.0 == row.surname));
            assert!(name.starts_with(row.surname));
            let list: &[&str] = if male { &MALE_GIVEN } else { &FEMALE_GIVEN };
            assert!(list.contains(&row.given_name[0]), "{name}");
            assert!(
                row.given_name[1].is_empty() || list.contains(&row.given_name[1]),
                "{name}"
            );
            let given_len = name.chars().count() - row.surname.chars().count();
            assert!((1..=2).contains(&given_len), "{name}");

            // Insurance type and amount.
            let kind = field("insurance_type");
            let (lo, hi) = match kind.as_str() {
                "enterprise" => (2200.0, 6500.0),
                "institution" => (4500.0, 9500.0),
                "resident" => (150.0, 450.0),
                other => panic!("unknown insurance type {other}"),
            };
            *counts.entry(row.insurance_type.as_str()).or_default() += 1;
            let amount = field("monthly_amount");
            let (yuan, cents) = amount.split_once('.').unwrap();
            assert_eq!(cents.len(), 2, "{amount}");
            assert!(
                yuan.bytes()
                    .chain(cents.bytes())
                    .all(|b| b.is_ascii_digit()),
                "{amount}"
            );
            let value: f64 = amount.parse().unwrap();
            assert!(value >= lo && value <= hi, "{kind} {amount}");

            // Insured region.
            assert!(REGIONS.contains(&field("region_code").as_str()));
            if field("region_code") == id[..6] {
                *counts.entry("same_region").or_default() += 1;
            }

            // Benefit start follows the retirement rule (no clamping is needed for 2026).
            let benefit_start = parse_month(&field("benefit_start"));
            assert_eq!(benefit_start, row.benefit_start);
            let age = match (male, kind.as_str()) {
                (true, _) => 60,
                (false, "institution") => 55,
                (false, _) => 50,
            };
            let retirement_month = month_index(birth) + 12 * age;
            assert_eq!(
                month_index(benefit_start),
                retirement_month + 1,
                "{id} {kind}"
            );
            assert!(benefit_start <= today);

            // Phone.
            let phone = field("phone");
            if phone.is_empty() {
                *counts.entry("no_phone").or_default() += 1;
            } else {
                assert_eq!(phone.len(), 11, "{phone}");
                assert!(phone.bytes().all(|b| b.is_ascii_digit()));
                assert!(
                    PHONE_PREFIXES.contains(&phone[..3].parse().unwrap()),
                    "{phone}"
                );
            }

            // Residence and country.
            match field("residence").as_str() {
                "domestic" => assert!(field("country").is_empty()),
                "abroad" => assert!(COUNTRIES.contains(&field("country").as_str())),
                other => panic!("unknown residence {other}"),
            }

            // Certification date.
            let certified = field("last_certified_on");
            if certified.is_empty() {
                *counts.entry("uncertified").or_default() += 1;
                assert!(
                    month_index(benefit_start) > month_index(today) - 10,
                    "{id} {benefit_start}"
                );
            } else {
                let certified = NaiveDate::parse_from_str(&certified, "%Y-%m-%d").unwrap();
                assert!(
                    certified <= today && certified >= benefit_start,
                    "{id} {certified}"
                );
                let days = (today - certified).num_days();
                let band = match days {
                    0..=289 => "current",
                    290..=363 => "due",
                    367..=393 => "grace",
                    397..=608 => "long_overdue",
                    _ if certified == benefit_start => "onboarding",
                    _ => panic!("{id} certified {days} days ago"),
                };
                *counts.entry(band).or_default() += 1;
            }

            assert_eq!(field("paid_through"), "2026-02");
        }
        assert_eq!(records, 2_000);

        // Loose distribution checks: wide enough never to flake for this fixed seed, tight
        // enough to catch a broken weight.
        let share = |key: &str| counts.get(key).copied().unwrap_or(0) as f64 / 2_000.0;
        assert!((0.65..0.75).contains(&share("enterprise")), "{counts:?}");
        assert!((0.07..0.13).contains(&share("institution")), "{counts:?}");
        assert!((0.16..0.24).contains(&share("resident")), "{counts:?}");
        assert!((0.76..0.84).contains(&share("same_region")), "{counts:?}");
        assert!((0.12..0.18).contains(&share("no_phone")), "{counts:?}");
        assert!((0.003..0.02).contains(&share("uncertified")), "{counts:?}");
        assert!((0.63..0.75).contains(&share("current")), "{counts:?}");
        assert!((0.14..0.21).contains(&share("due")), "{counts:?}");
        assert!((0.04..0.09).contains(&share("grace")), "{counts:?}");
        assert!((0.02..0.06).contains(&share("long_overdue")), "{counts:?}");
    }

    /// Far-off `today` values exercise the clamping and recent-retiree fallbacks.
    #[test]
    fn invariants_hold_for_unusual_today() {
        for today in [
            date(1967, 1, 1),
            date(1990, 6, 1),
            date(2040, 1, 31),
            date(9999, 12, 31),
        ] {
            let options = opts(400, 3, today);
            let mut ids = std::collections::HashSet::new();
            for row in rows(&options) {
                assert!(ids.insert(row.id_number()));
                assert!(row.benefit_start <= today, "{today} {row:?}");
                assert_eq!(row.benefit_start.day(), 1);
                if let Some(certified) = row.last_certified_on {
                    assert!(
                        certified <= today && certified >= row.benefit_start,
                        "{today} {row:?}"
                    );
                } else {
                    assert!(
                        month_index(row.benefit_start) > month_index(today) - 10,
                        "{today} {row:?}"
                    );
                }
                assert_eq!(month_index(row.paid_through), month_index(today) - 1);
            }
            let bytes = csv_bytes(&options);
            assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 401);
        }
    }

    #[test]
    fn amount_formatting() {
        let mut buf = [0u8; 16];
        assert_eq!(format_amount(356_720, &mut buf), b"3567.20");
        assert_eq!(format_amount(5, &mut buf), b"0.05");
        assert_eq!(format_amount(u32::MAX, &mut buf), b"42949672.95");
    }
}
