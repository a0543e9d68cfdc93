//! Command output: readable text for people, and with `--json` one JSON object as the
//! last line of standard output.

use serde::Serialize;

#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints human text (unless `--json`), then the JSON summary (only with `--json`).
    pub fn finish<T: Serialize>(&self, human: impl FnOnce() -> String, summary: &T) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string(summary).unwrap_or_else(|_| "{}".to_string())
            );
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }

    /// Progress and notices go to standard error so standard output stays parseable.
    pub fn notice(&self, text: &str) {
        eprintln!("{text}");
    }
}

pub fn yuan(fen: i64) -> String {
    lifecert_domain::Fen::new(fen).to_string()
}
