//! Normalisation of raw identity fields (ID number, name) from other departments' feeds.
//!
//! Feeds are typed by hand in many offices: full-width digits, stray spaces, traditional
//! characters and minority-name middle dots all appear. Everything that compares names goes
//! through these functions first (ID numbers: `lifecert_app::feeds::normalise_id`) so that a cosmetic difference never counts
//! as a disagreement.

use pinyin::{ToPinyin, ToPinyinMulti};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A name in the form used for comparison: no spaces or middle dots, half-width, simplified
/// characters (for the built-in table of characters common in names), Latin letters upper-case.
pub fn normalize_name(raw: &str) -> String {
    let table = trad_to_simp();
    raw.chars()
        .filter(|c| !c.is_whitespace() && !is_middle_dot(*c))
        .map(to_half_width)
        .map(|c| table.get(&c).copied().unwrap_or(c))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Toneless pinyin, one syllable per character separated by spaces, using the first reading
/// of each character except for surnames with a special reading (单 shan, 曾 zeng, …).
/// Runs of Latin letters or digits become one lower-case "syllable"; other characters without
/// a reading are dropped.
pub fn name_pinyin(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    name_pinyin_of(&chars)
}

/// [`name_pinyin`] of a name already split into characters, written into one string (a
/// million pensioners' names are read this way to build the matcher).
pub(crate) fn name_pinyin_of(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len() * 6);
    let syllable = |out: &mut String, s: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        push_plain(out, s);
    };
    let mut start = 0;
    if let Some((len, readings)) = surname_override(chars) {
        for r in readings {
            syllable(&mut out, r);
        }
        start = len;
    }
    let mut latin = String::new();
    for &c in &chars[start..] {
        if c.is_ascii_alphanumeric() {
            latin.push(c.to_ascii_lowercase());
            continue;
        }
        if !latin.is_empty() {
            syllable(&mut out, &latin);
            latin.clear();
        }
        if let Some(p) = c.to_pinyin() {
            syllable(&mut out, p.plain());
        }
    }
    if !latin.is_empty() {
        syllable(&mut out, &latin);
    }
    out
}

/// All toneless readings of one character (first reading first); the surname override, if
/// any, is added by the caller. Used to treat 李娜/李那 as homophones even though the first
/// reading of 娜 in the dictionary is "nuo".
#[cfg(test)]
pub(crate) fn readings(c: char) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(m) = c.to_pinyin_multi() {
        for p in m {
            let mut s = String::new();
            push_plain(&mut s, p.plain());
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// The readings of [`readings`], each as [`syllable_hash`] of it, without building strings;
/// a reading may repeat (the caller keeps the first).
pub(crate) fn reading_hashes(c: char) -> impl Iterator<Item = u32> {
    c.to_pinyin_multi()
        .into_iter()
        .flatten()
        .map(|p| syllable_hash(p.plain()))
}

/// A syllable as a number (FNV-1a over its plain form, ü as v): comparing readings needs
/// equality only.
pub(crate) fn syllable_hash(s: &str) -> u32 {
    let mut h = 0x811c_9dc5_u32;
    for c in plain(s) {
        let mut buf = [0; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// The surname reading override: (characters consumed, readings).
pub(crate) fn surname_override(chars: &[char]) -> Option<(usize, &'static [&'static str])> {
    const COMPOUND: &[(&str, &[&str])] = &[
        ("尉迟", &["yu", "chi"]),
        ("万俟", &["mo", "qi"]),
        ("长孙", &["zhang", "sun"]),
    ];
    const SINGLE: &[(char, &str)] = &[
        ('单', "shan"),
        ('曾', "zeng"),
        ('解', "xie"),
        ('仇', "qiu"),
        ('朴', "piao"),
        ('区', "ou"),
        ('查', "zha"),
        ('盖', "ge"),
        ('乐', "yue"),
        ('缪', "miao"),
        ('翟', "zhai"),
        ('覃', "qin"),
        ('燕', "yan"),
        ('黑', "he"),
        ('秘', "bi"),
    ];
    if chars.len() >= 3 {
        for (s, r) in COMPOUND {
            let mut it = s.chars();
            if it.next() == Some(chars[0]) && it.next() == Some(chars[1]) {
                return Some((2, r));
            }
        }
    }
    let first = *chars.first()?;
    SINGLE
        .iter()
        .find(|(c, _)| *c == first)
        .map(|(_, r)| (1, std::slice::from_ref(r)))
}

/// The "plain" form of the pinyin crate writes ü as "ü"; keyboards and other systems write
/// "v", so both sides are brought to "v".
fn plain(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().map(|c| if c == 'ü' { 'v' } else { c })
}

fn push_plain(out: &mut String, s: &str) {
    out.extend(plain(s));
}

fn is_middle_dot(c: char) -> bool {
    matches!(
        c,
        '·' | '•' | '・' | '‧' | '∙' | '⋅' | '･' | '．' | '.' | '﹒'
    )
}

fn to_half_width(c: char) -> char {
    let u = u32::from(c);
    match u {
        0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// Traditional → simplified pairs for characters common in names (surnames first, then
/// given-name characters, then other frequent characters). Each pair is two characters.
pub(crate) const TRAD_SIMP: &str = concat!(
    // surnames
    "張张陳陈劉刘黃黄趙赵吳吴孫孙馬马鄭郑謝谢韓韩馮冯鄧邓蕭萧葉叶蘇苏呂吕盧卢鍾钟鐘钟譚谭",
    "陸陆範范賈贾韋韦鄒邹閆闫閻阎龍龙賀贺顧顾龔龚萬万錢钱嚴严湯汤楊杨許许鄔邬蔣蒋羅罗",
    "鄺邝歐欧陽阳關关聶聂齊齐喬乔魯鲁溫温紀纪倫伦鮑鲍單单駱骆藍蓝簡简饒饶聞闻費费衛卫",
    "顏颜遲迟練练塗涂婁娄龐庞諸诸莊庄畢毕郟郏項项寧宁壽寿鞏巩樓楼農农邊边甯宁門门貝贝",
    "車车諶谌黨党隨随闕阙賴赖麥麦淩凌燾焘買买",
    // given-name characters
    "華华國国軍军偉伟強强誌志榮荣傑杰貴贵寶宝剛刚慶庆興兴長长蘭兰鳳凤麗丽靜静紅红雲云",
    "蓮莲東东輝辉濤涛鵬鹏飛飞嶽岳綱纲遠远書书愛爱鳴鸣廣广進进誠诚義义禮礼順顺財财發发",
    "實实應应漢汉雙双聖圣樂乐懷怀學学穎颖潔洁豔艳艷艳嬌娇瑩莹瓊琼瑤瑶鶯莺鶴鹤飄飘婭娅",
    "嬋婵嫻娴嫺娴姍姗璣玑瑋玮璽玺環环瓏珑韻韵緒绪維维純纯絲丝綺绮繡绣紗纱絹绢紹绍經经",
    "緯纬綠绿總总績绩繼继續续紋纹彥彦顯显賢贤賓宾貞贞賦赋資资賽赛贊赞讚赞贏赢貿贸質质",
    "傳传儀仪億亿優优僑侨儉俭俠侠衆众眾众會会來来歲岁壯壮聲声鋒锋鋼钢銀银銘铭錦锦鈞钧",
    "鈺钰鍵键鐵铁鎮镇鏡镜鐸铎鑒鉴錫锡釗钊銳锐錚铮鐳镭際际險险隱隐閃闪閑闲閣阁闊阔開开",
    "間间閩闽頌颂頓顿領领頤颐頻频題题願愿類类預预頂顶須须頎颀風风颯飒騰腾駿骏騏骐驥骥",
    "驊骅駒驹騫骞驍骁鴻鸿鷹鹰鸝鹂鵑鹃齡龄瀾澜潤润澤泽湧涌滿满濱滨灣湾濟济潛潜淺浅瀅滢",
    "瀟潇灝灏澗涧淵渊涼凉燦灿煒炜燁烨煥焕熾炽燈灯營营熱热燭烛寬宽審审憲宪憶忆態态戀恋",
    "憐怜樹树權权樺桦棟栋楓枫樑梁標标機机極极橋桥櫻樱楨桢樸朴歡欢當当畫画盡尽監监碩硕",
    "確确禎祯祿禄穩稳積积稱称種种筆笔築筑簫箫糧粮聯联聰聪職职舉举蕓芸藝艺薈荟蒼苍號号",
    "親亲覺觉觀观詩诗語语論论謙谦謹谨證证譽誉護护讓让議议詠咏譜谱謀谋諾诺貫贯賜赐軒轩",
    "輪轮載载輕轻運运達达連连過过選选遷迁遙遥適适鄉乡醫医釋释雞鸡離离難难電电靈灵響响",
    "體体鮮鲜鳥鸟點点龜龟勁劲勵励勝胜務务動动協协厲厉參参變变員员啟启圓圆園园團团圖图",
    "場场堅坚報报壇坛夢梦奪夺奮奋專专將将對对導导層层嶺岭島岛崗岗嵐岚巒峦帥帅師师幫帮",
    "幹干幾几廳厅彈弹後后徑径從从復复徵征憂忧戰战擁拥揚扬換换擊击據据擇择數数斷断時时",
    "晉晋曉晓曄晔暉晖暢畅曆历歷历條条業业構构歸归氣气無无為为爭争獨独獲获獻献瑪玛產产",
    "異异療疗盤盘競竞紡纺納纳紛纷紙纸紳绅絕绝綜综緊紧線线編编縱纵羅罗習习翹翘聽听肅肃",
    "脈脉臨临與与舊旧艱艰處处術术衝冲製制複复覽览訓训訪访設设話话詳详認认說说請请讀读",
    "豐丰貢贡負负貨货賞赏贈赠跡迹蹤踪轉转辦办遞递遺遗還还邁迈鄰邻錄录錯错鍊炼鎖锁閱阅",
    "雖虽霧雾韌韧頭头顆颗餘余驗验驚惊鬥斗鴨鸭鵝鹅鹽盐麼么鎧铠凱凯愷恺塢坞嬡嫒媽妈",
    "綿绵縉缙繽缤紀纪約约級级統统結结給给絡络組组細细終终緣缘縣县敘叙銓铨鈴铃",
);

fn trad_to_simp() -> &'static HashMap<char, char> {
    static TABLE: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let chars: Vec<char> = TRAD_SIMP.chars().collect();
        chars
            .chunks_exact(2)
            .filter(|p| p[0] != p[1])
            .map(|p| (p[0], p[1]))
            .collect()
    })
}

/// Simplified → one traditional form, for the synthetic-data generator.
pub(crate) fn simp_to_trad() -> &'static HashMap<char, char> {
    static TABLE: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::new();
        for (t, s) in trad_to_simp() {
            // Deterministic choice when two traditional forms share one simplified form.
            m.entry(*s)
                .and_modify(|e: &mut char| *e = (*e).min(*t))
                .or_insert(*t);
        }
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        let chars: Vec<char> = TRAD_SIMP.chars().collect();
        assert_eq!(chars.len() % 2, 0, "odd number of characters in the table");
        let mut seen: HashMap<char, char> = HashMap::new();
        for p in chars.chunks_exact(2) {
            if let Some(prev) = seen.insert(p[0], p[1]) {
                assert_eq!(prev, p[1], "{} maps to two characters", p[0]);
            }
            // A simplified character must not itself be converted again.
            assert!(
                p[0] == p[1] || !trad_to_simp().contains_key(&p[1]),
                "{} is both a target and a source",
                p[1]
            );
        }
        assert!(trad_to_simp().len() >= 300, "{}", trad_to_simp().len());
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name(" 張 偉 "), "张伟");
        assert_eq!(normalize_name("陳國華"), "陈国华");
        assert_eq!(normalize_name("買買提·艾力"), "买买提艾力");
        assert_eq!(normalize_name("阿依古丽•吐尔逊"), "阿依古丽吐尔逊");
        assert_eq!(normalize_name("ｗａｎｇ　ｌｉ"), "WANGLI");
        assert_eq!(normalize_name("劉德華"), "刘德华");
        assert_eq!(normalize_name("黃麗萍"), "黄丽萍");
    }

    #[test]
    fn pinyin() {
        assert_eq!(name_pinyin("单田芳"), "shan tian fang");
        assert_eq!(name_pinyin("曾国藩"), "zeng guo fan");
        assert_eq!(name_pinyin("尉迟恭敬"), "yu chi gong jing");
        assert_eq!(name_pinyin("张伟"), name_pinyin("張偉"));
        assert_eq!(name_pinyin("张伟"), "zhang wei");
        assert_eq!(name_pinyin("吕丽"), "lv li");
        assert_eq!(name_pinyin("王Anna"), "wang anna");
        assert!(readings('娜').contains(&"na".to_string()));
    }

    #[test]
    fn reading_hashes_are_the_hashes_of_the_plain_readings() {
        assert_eq!(syllable_hash("lü"), syllable_hash("lv"));
        assert_ne!(syllable_hash("lü"), syllable_hash("lu"));
        for c in "娜吕绿女单曾解行乐李".chars() {
            let mut hashed: Vec<u32> = Vec::new();
            for h in reading_hashes(c) {
                if !hashed.contains(&h) {
                    hashed.push(h);
                }
            }
            let expected: Vec<u32> = readings(c).iter().map(|r| syllable_hash(r)).collect();
            assert_eq!(hashed, expected, "{c}");
        }
    }
}
