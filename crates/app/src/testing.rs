//! What the crate's own tests share.

use crate::{Actor, App};
use chrono::NaiveDate;

/// An app on a new SQLite database in `dir`, on 2026-11-30, with one pensioner on the roll
/// (王建国, 32010219500107952X, born 1950-01-07).
pub(crate) async fn app_with_one_pensioner(dir: &tempfile::TempDir) -> App {
    use base64::Engine;
    let url = format!("sqlite://{}/lifecert.db", dir.path().display());
    let store = lifecert_store::Store::open(&url).await.unwrap();
    let keys = lifecert_crypto::KeyRing::from_key_list(
        &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
        lifecert_crypto::Cipher::Aes256Gcm,
    )
    .unwrap();
    let clock = crate::FixedClock::at(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    let app = App::new(
        store,
        keys,
        lifecert_domain::Policy::default(),
        std::sync::Arc::new(clock),
    )
    .await
    .unwrap();
    let roll = dir.path().join("roll.csv");
    std::fs::write(
        &roll,
        "id_number,name,insurance_type,region_code,benefit_start,monthly_amount\n\
         32010219500107952X,王建国,enterprise,320102,2010-02,3000.00\n",
    )
    .unwrap();
    app.import_recipients(&Actor::System, &roll, &mut |_| {})
        .await
        .unwrap();
    app
}
