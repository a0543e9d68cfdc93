//! The key ring: field encryption, blind indexes, row digests and the database key check.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{AeadInPlace, Aes256Gcm, AesGcm, KeyInit};
use hmac::Mac;
use sm4::Sm4;

use crate::key::{hex, keyed_hmac, Cipher, HmacSha256, MasterKey};
use crate::CryptoError;

type Sm4Gcm = AesGcm<Sm4, U12>;

const FORMAT_VERSION: u8 = 1;
/// Version, cipher id and the 8-byte key id: the part of the header that is authenticated as AAD.
const HEADER_LEN: usize = 10;
const NONCE_LEN: usize = 12;
const PREFIX_LEN: usize = HEADER_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes a ciphertext has on top of its plaintext.
pub const CIPHERTEXT_OVERHEAD: usize = PREFIX_LEN + TAG_LEN;

/// Longest [`Field::label`], so the AAD fits in a stack buffer.
const MAX_LABEL_LEN: usize = 12;

const ENC_LABEL: &[u8] = b"lifecert/enc/v1";
const BIDX_LABEL: &[u8] = b"lifecert/bidx/v1";
const DIGEST_LABEL: &[u8] = b"lifecert/digest/v1";

const CHECK_PLAINTEXT: &[u8] = b"lifecert key check v1";

/// Which column a value belongs to.
///
/// The label is bound into every ciphertext and blind index, so a value cannot be
/// copied from one column into another and still decrypt or match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    IdNumber,
    Phone,
    Address,
    BankAccount,
    Other,
}

impl Field {
    /// Every field, for code that needs to walk all encrypted columns.
    pub const ALL: [Field; 6] = [
        Field::Name,
        Field::IdNumber,
        Field::Phone,
        Field::Address,
        Field::BankAccount,
        Field::Other,
    ];

    /// The stable label used for domain separation; changing one would orphan existing data.
    pub fn label(&self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::IdNumber => "id_number",
            Field::Phone => "phone",
            Field::Address => "address",
            Field::BankAccount => "bank_account",
            Field::Other => "other",
        }
    }
}

/// Everything derived from one master key, built once so per-row work is just cloning and hashing.
struct Slot {
    id: [u8; 8],
    aes: Aes256Gcm,
    sm4: Sm4Gcm,
    bidx: HmacSha256,
    digest: HmacSha256,
}

impl Slot {
    fn new(key: &MasterKey) -> Slot {
        let enc = key.derive(ENC_LABEL);
        Slot {
            id: key.key_id_bytes(),
            aes: Aes256Gcm::new(GenericArray::from_slice(&enc)),
            // SM4 keys are 128 bits; the first half of the derived key is as good as any.
            sm4: Sm4Gcm::new(GenericArray::from_slice(&enc[..16])),
            bidx: keyed_hmac(&key.derive(BIDX_LABEL)),
            digest: keyed_hmac(&key.derive(DIGEST_LABEL)),
        }
    }
}

/// The active key plus older keys that are still accepted for decryption.
///
/// Cheap to clone (the derived keys are shared). `Debug` shows only key ids.
#[derive(Clone)]
pub struct KeyRing {
    cipher: Cipher,
    /// Never empty; slot 0 is the active key.
    slots: Arc<[Slot]>,
    /// The slot whose subkeys compute blind indexes and digests. Stored indexes must stay
    /// stable across rotation, so this is the key a database was set up with, not
    /// necessarily the active one.
    index: usize,
}

impl KeyRing {
    /// Builds a ring; `previous` keys only decrypt. Repeated keys are ignored.
    pub fn new(active: MasterKey, previous: Vec<MasterKey>, cipher: Cipher) -> KeyRing {
        let mut slots: Vec<Slot> = Vec::with_capacity(1 + previous.len());
        for key in std::iter::once(&active).chain(previous.iter()) {
            let id = key.key_id_bytes();
            if slots.iter().all(|s| s.id != id) {
                slots.push(Slot::new(key));
            }
        }
        KeyRing {
            cipher,
            slots: slots.into(),
            index: 0,
        }
    }

    /// Uses the key `key_id` (which must be in the ring) for blind indexes and digests,
    /// so that a database indexed under an older key stays searchable after rotation.
    pub fn with_index_key(mut self, key_id: &str) -> Result<KeyRing, CryptoError> {
        self.index = self
            .slots
            .iter()
            .position(|s| hex(&s.id) == key_id)
            .ok_or_else(|| CryptoError::IndexKeyMissing {
                key_id: key_id.to_string(),
            })?;
        Ok(self)
    }

    /// Id of the key used for blind indexes and digests.
    pub fn index_key_id(&self) -> String {
        hex(&self.slots[self.index].id)
    }

    /// Parses one or more base64 keys separated by commas, whitespace or newlines.
    ///
    /// The first key is active; the rest are previous keys kept for reading old data.
    pub fn from_key_list(list: &str, cipher: Cipher) -> Result<KeyRing, CryptoError> {
        let items: Vec<&str> = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Err(CryptoError::InvalidKey(
                "no key given; expected base64 of 32 bytes (e.g. `openssl rand -base64 32`)"
                    .to_string(),
            ));
        }
        let total = items.len();
        let mut keys = Vec::with_capacity(total);
        for (i, item) in items.into_iter().enumerate() {
            let key = MasterKey::from_base64(item).map_err(|e| match e {
                // Say which entry is bad; the entry itself is secret and must not be echoed.
                CryptoError::InvalidKey(m) if total > 1 => {
                    CryptoError::InvalidKey(format!("key {} of {total}: {m}", i + 1))
                }
                other => other,
            })?;
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let active = keys
            .next()
            .ok_or_else(|| CryptoError::InvalidKey("no key given".to_string()))?;
        Ok(KeyRing::new(active, keys.collect(), cipher))
    }

    /// The cipher used for new encryptions.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Id of the key used for new encryptions.
    pub fn active_key_id(&self) -> String {
        hex(&self.active().id)
    }

    /// Ids of all keys in the ring, active first.
    pub fn key_ids(&self) -> Vec<String> {
        self.slots.iter().map(|s| hex(&s.id)).collect()
    }

    fn active(&self) -> &Slot {
        &self.slots[0]
    }

    /// Encrypts under the active key and the configured cipher with a fresh random nonce.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, because continuing
    /// without a fresh nonce would break GCM; and for plaintexts over GCM's 64 GiB limit.
    pub fn encrypt(&self, field: Field, plaintext: &[u8]) -> Vec<u8> {
        let slot = self.active();
        let mut out = Vec::with_capacity(CIPHERTEXT_OVERHEAD + plaintext.len());
        out.push(FORMAT_VERSION);
        out.push(self.cipher.id());
        out.extend_from_slice(&slot.id);

        let mut nonce = [0u8; NONCE_LEN];
        if let Err(e) = getrandom::getrandom(&mut nonce) {
            panic!("operating system random number generator failed: {e}");
        }
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);

        let mut aad_buf = [0u8; HEADER_LEN + MAX_LABEL_LEN];
        let aad = build_aad(&mut aad_buf, &out[..HEADER_LEN], field);
        let nonce = GenericArray::from_slice(&nonce);
        let body = &mut out[PREFIX_LEN..];
        let tag = match self.cipher {
            Cipher::Aes256Gcm => slot.aes.encrypt_in_place_detached(nonce, aad, body),
            Cipher::Sm4Gcm => slot.sm4.encrypt_in_place_detached(nonce, aad, body),
        };
        match tag {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => panic!("plaintext too long for GCM ({} bytes)", plaintext.len()),
        }
        out
    }

    /// Decrypts a value written by [`KeyRing::encrypt`] for the same `field`.
    ///
    /// The key and cipher are taken from the ciphertext's header, so data stays
    /// readable after the active key or the cipher setting changes.
    pub fn decrypt(&self, field: Field, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < CIPHERTEXT_OVERHEAD || ciphertext[0] != FORMAT_VERSION {
            return Err(CryptoError::Malformed);
        }
        let cipher = Cipher::from_id(ciphertext[1]).ok_or(CryptoError::Malformed)?;
        let header = &ciphertext[..HEADER_LEN];
        let key_id = &header[2..HEADER_LEN];
        let slot = self.slots.iter().find(|s| s.id == key_id).ok_or_else(|| {
            CryptoError::UnknownKeyId {
                key_id: hex(key_id),
            }
        })?;

        let nonce = GenericArray::from_slice(&ciphertext[HEADER_LEN..PREFIX_LEN]);
        let (body, tag) = ciphertext[PREFIX_LEN..].split_at(ciphertext.len() - CIPHERTEXT_OVERHEAD);
        let tag = GenericArray::from_slice(tag);
        let mut aad_buf = [0u8; HEADER_LEN + MAX_LABEL_LEN];
        let aad = build_aad(&mut aad_buf, header, field);

        let mut out = body.to_vec();
        let result = match cipher {
            Cipher::Aes256Gcm => slot
                .aes
                .decrypt_in_place_detached(nonce, aad, &mut out, tag),
            Cipher::Sm4Gcm => slot
                .sm4
                .decrypt_in_place_detached(nonce, aad, &mut out, tag),
        };
        result.map_err(|_| CryptoError::Decrypt)?;
        Ok(out)
    }

    /// [`KeyRing::encrypt`] for text.
    pub fn encrypt_str(&self, field: Field, s: &str) -> Vec<u8> {
        self.encrypt(field, s.as_bytes())
    }

    /// [`KeyRing::decrypt`] for text; authentic bytes that are not UTF-8 are reported as `Malformed`.
    pub fn decrypt_str(&self, field: Field, ct: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.decrypt(field, ct)?).map_err(|_| CryptoError::Malformed)
    }

    /// A deterministic, keyed look-up token for an already normalised value.
    ///
    /// Uses the index key (see [`KeyRing::with_index_key`]), so rotating the active key
    /// leaves stored indexes valid as long as the index key stays in the ring.
    pub fn blind_index(&self, field: Field, normalized: &str) -> [u8; 16] {
        let mut mac = self.slots[self.index].bidx.clone();
        mac.update(field.label().as_bytes());
        // Labels never contain NUL, so label || 0 || value cannot collide across fields.
        mac.update(&[0]);
        mac.update(normalized.as_bytes());
        truncate(mac)
    }

    /// A keyed fingerprint of several values, for noticing changed rows without decrypting.
    ///
    /// Each part is length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
    /// Like blind indexes it depends on the index key.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 16] {
        let mut mac = self.slots[self.index].digest.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        truncate(mac)
    }

    /// A ciphertext of a fixed text, stored when a database is created so a later
    /// start with the wrong key is caught before any data is touched.
    pub fn check_value(&self) -> Vec<u8> {
        self.encrypt(Field::Other, CHECK_PLAINTEXT)
    }

    /// Confirms that `stored` (from [`KeyRing::check_value`]) can be read with this ring.
    ///
    /// A check value written under a previous key in the ring is accepted.
    pub fn verify_check_value(&self, stored: &[u8]) -> Result<(), CryptoError> {
        let wrong_key = |expected: String| CryptoError::WrongKey {
            expected,
            configured: self.active_key_id(),
        };
        match self.decrypt(Field::Other, stored) {
            Ok(plain) if plain == CHECK_PLAINTEXT => Ok(()),
            Ok(_) | Err(CryptoError::Decrypt) => {
                Err(wrong_key(ciphertext_key_id(stored).unwrap_or_default()))
            }
            Err(CryptoError::UnknownKeyId { key_id }) => Err(wrong_key(key_id)),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = self.key_ids();
        f.debug_struct("KeyRing")
            .field("cipher", &self.cipher)
            .field("active", &ids[0])
            .field("previous", &&ids[1..])
            .finish()
    }
}

/// The id of the key a ciphertext was written under, or `None` if it is not in our format.
///
/// Lets a re-encryption job find rows still under an old key without decrypting them.
pub fn ciphertext_key_id(ciphertext: &[u8]) -> Option<String> {
    if ciphertext.len() < CIPHERTEXT_OVERHEAD || ciphertext[0] != FORMAT_VERSION {
        return None;
    }
    Some(hex(&ciphertext[2..HEADER_LEN]))
}

fn build_aad<'a>(
    buf: &'a mut [u8; HEADER_LEN + MAX_LABEL_LEN],
    header: &[u8],
    field: Field,
) -> &'a [u8] {
    let label = field.label().as_bytes();
    let len = HEADER_LEN + label.len();
    buf[..HEADER_LEN].copy_from_slice(header);
    buf[HEADER_LEN..len].copy_from_slice(label);
    &buf[..len]
}

fn truncate(mac: HmacSha256) -> [u8; 16] {
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn key(n: u8) -> MasterKey {
        MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([n; 32])).unwrap()
    }

    fn ring(n: u8, cipher: Cipher) -> KeyRing {
        KeyRing::new(key(n), Vec::new(), cipher)
    }

    const CIPHERS: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::Sm4Gcm];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn round_trip_every_cipher_and_field() {
        let long = "路".repeat(400);
        for cipher in CIPHERS {
            let r = ring(1, cipher);
            for field in Field::ALL {
                for text in ["", "张三", "Zhang San", "110101199003077777", long.as_str()] {
                    let ct = r.encrypt_str(field, text);
                    assert_eq!(ct.len(), CIPHERTEXT_OVERHEAD + text.len());
                    assert_eq!(ct[0], 1);
                    assert_eq!(ct[1], cipher.id());
                    assert_eq!(hex(&ct[2..10]), r.active_key_id());
                    assert_eq!(
                        r.decrypt_str(field, &ct).unwrap(),
                        text,
                        "{cipher} {field:?}"
                    );
                    assert_eq!(r.decrypt(field, &ct).unwrap(), text.as_bytes());
                }
            }
        }
    }

    #[test]
    fn nonces_are_fresh() {
        for cipher in CIPHERS {
            let r = ring(1, cipher);
            let a = r.encrypt_str(Field::Name, "same");
            let b = r.encrypt_str(Field::Name, "same");
            assert_ne!(a[HEADER_LEN..PREFIX_LEN], b[HEADER_LEN..PREFIX_LEN]);
            assert_ne!(a, b);
        }
    }

    #[test]
    fn tampering_any_byte_fails() {
        for cipher in CIPHERS {
            let r = ring(1, cipher);
            let ct = r.encrypt_str(Field::IdNumber, "110101199003077777");
            for i in 0..ct.len() {
                for flip in [0x01u8, 0x80] {
                    let mut bad = ct.clone();
                    bad[i] ^= flip;
                    let err = r.decrypt(Field::IdNumber, &bad).unwrap_err();
                    match i {
                        0 | 1 => assert!(matches!(err, CryptoError::Malformed), "{i}: {err:?}"),
                        2..=9 => assert!(
                            matches!(err, CryptoError::UnknownKeyId { .. }),
                            "{i}: {err:?}"
                        ),
                        _ => assert!(matches!(err, CryptoError::Decrypt), "{i}: {err:?}"),
                    }
                }
            }
            // Relabelling the cipher as the other valid one must not help.
            let mut relabelled = ct.clone();
            relabelled[1] = if cipher == Cipher::Aes256Gcm { 2 } else { 1 };
            assert!(matches!(
                r.decrypt(Field::IdNumber, &relabelled),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn truncation_and_extension_fail() {
        let r = ring(1, Cipher::Aes256Gcm);
        let ct = r.encrypt_str(Field::Phone, "13800138000");
        for len in 0..ct.len() {
            let err = r.decrypt(Field::Phone, &ct[..len]).unwrap_err();
            if len < CIPHERTEXT_OVERHEAD {
                assert!(matches!(err, CryptoError::Malformed), "{len}: {err:?}");
            } else {
                assert!(matches!(err, CryptoError::Decrypt), "{len}: {err:?}");
            }
        }
        let mut longer = ct.clone();
        longer.push(0);
        assert!(matches!(
            r.decrypt(Field::Phone, &longer),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn ciphertext_is_bound_to_its_field() {
        for cipher in CIPHERS {
            let r = ring(1, cipher);
            for from in Field::ALL {
                let ct = r.encrypt_str(from, "value");
                for to in Field::ALL {
                    if from != to {
                        assert!(
                            matches!(r.decrypt(to, &ct), Err(CryptoError::Decrypt)),
                            "{from:?} -> {to:?}"
                        );
                    }
                }
            }
            let ct = r.encrypt_str(Field::Name, "张三");
            assert!(matches!(
                r.decrypt(Field::IdNumber, &ct),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn unknown_key_id_is_reported() {
        let a = ring(1, Cipher::Aes256Gcm);
        let b = ring(2, Cipher::Aes256Gcm);
        let ct = a.encrypt_str(Field::Address, "北京市");
        let err = b.decrypt(Field::Address, &ct).unwrap_err();
        match &err {
            CryptoError::UnknownKeyId { key_id } => assert_eq!(key_id, &a.active_key_id()),
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&a.active_key_id()), "{msg}");
        assert!(msg.contains("LIFECERT_MASTER_KEY"), "{msg}");
    }

    #[test]
    fn rotation_keeps_old_data_readable() {
        let old = ring(1, Cipher::Aes256Gcm);
        let old_ct = old.encrypt_str(Field::BankAccount, "6222020200112233445");

        let rotated = KeyRing::new(key(2), vec![key(1)], Cipher::Aes256Gcm);
        assert_eq!(rotated.active_key_id(), key(2).key_id());
        assert_eq!(rotated.key_ids(), vec![key(2).key_id(), key(1).key_id()]);
        assert_eq!(
            rotated.decrypt_str(Field::BankAccount, &old_ct).unwrap(),
            "6222020200112233445"
        );
        assert_eq!(ciphertext_key_id(&old_ct), Some(key(1).key_id()));

        let new_ct = rotated.encrypt_str(Field::BankAccount, "6222020200112233445");
        assert_eq!(ciphertext_key_id(&new_ct), Some(key(2).key_id()));
        assert_eq!(
            rotated.decrypt_str(Field::BankAccount, &new_ct).unwrap(),
            "6222020200112233445"
        );
        assert!(matches!(
            old.decrypt(Field::BankAccount, &new_ct),
            Err(CryptoError::UnknownKeyId { .. })
        ));

        let listed = KeyRing::from_key_list(
            &format!("{},{}", key(2).to_base64(), key(1).to_base64()),
            Cipher::Aes256Gcm,
        )
        .unwrap();
        assert_eq!(
            listed.decrypt_str(Field::BankAccount, &old_ct).unwrap(),
            "6222020200112233445"
        );
        assert_eq!(
            listed.decrypt_str(Field::BankAccount, &new_ct).unwrap(),
            "6222020200112233445"
        );
    }

    #[test]
    fn switching_cipher_keeps_data_readable() {
        let aes = ring(1, Cipher::Aes256Gcm);
        let sm4 = ring(1, Cipher::Sm4Gcm);
        let a = aes.encrypt_str(Field::Name, "李四");
        let s = sm4.encrypt_str(Field::Name, "李四");
        assert_eq!((a[1], s[1]), (1, 2));
        assert_eq!(sm4.decrypt_str(Field::Name, &a).unwrap(), "李四");
        assert_eq!(aes.decrypt_str(Field::Name, &s).unwrap(), "李四");
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let r = ring(1, Cipher::Aes256Gcm);
        let ct = r.encrypt(Field::Other, &[0xff, 0xfe]);
        assert_eq!(r.decrypt(Field::Other, &ct).unwrap(), vec![0xff, 0xfe]);
        assert!(matches!(
            r.decrypt_str(Field::Other, &ct),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn blind_index_properties() {
        let r = ring(1, Cipher::Aes256Gcm);
        let bi = r.blind_index(Field::IdNumber, "110101199003077777");
        assert_eq!(bi, r.blind_index(Field::IdNumber, "110101199003077777"));
        assert_eq!(
            bi,
            r.clone().blind_index(Field::IdNumber, "110101199003077777")
        );
        // The cipher setting only affects encryption.
        assert_eq!(
            bi,
            ring(1, Cipher::Sm4Gcm).blind_index(Field::IdNumber, "110101199003077777")
        );

        assert_ne!(bi, r.blind_index(Field::IdNumber, "110101199003077778"));
        assert_ne!(
            bi,
            ring(2, Cipher::Aes256Gcm).blind_index(Field::IdNumber, "110101199003077777")
        );

        let per_field: std::collections::HashSet<[u8; 16]> = Field::ALL
            .iter()
            .map(|f| r.blind_index(*f, "13800138000"))
            .collect();
        assert_eq!(per_field.len(), Field::ALL.len());

        // By default the active key indexes: a rotated ring gives different indexes...
        let rotated = KeyRing::new(key(2), vec![key(1)], Cipher::Aes256Gcm);
        assert_ne!(
            rotated.blind_index(Field::IdNumber, "110101199003077777"),
            bi
        );
        assert_eq!(
            rotated.blind_index(Field::IdNumber, "110101199003077777"),
            ring(2, Cipher::Aes256Gcm).blind_index(Field::IdNumber, "110101199003077777")
        );
        // ...unless it keeps indexing under the key the data was indexed with.
        let pinned = rotated.with_index_key(&key(1).key_id()).unwrap();
        assert_eq!(
            pinned.blind_index(Field::IdNumber, "110101199003077777"),
            bi
        );
        assert_eq!(
            pinned.digest(&[b"x"]),
            ring(1, Cipher::Aes256Gcm).digest(&[b"x"])
        );
        assert_eq!(
            pinned.active_key_id(),
            key(2).key_id(),
            "new data still uses the new key"
        );
        assert_eq!(pinned.index_key_id(), key(1).key_id());
        let missing = ring(2, Cipher::Aes256Gcm).with_index_key(&key(1).key_id());
        assert!(matches!(missing, Err(CryptoError::IndexKeyMissing { .. })));
    }

    #[test]
    fn blind_index_matches_spec() {
        let r = ring(1, Cipher::Aes256Gcm);
        let subkey = key(1).derive(b"lifecert/bidx/v1");
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&subkey).unwrap();
        mac.update(b"phone\x0013800138000");
        assert_eq!(
            r.blind_index(Field::Phone, "13800138000")[..],
            mac.finalize().into_bytes()[..16]
        );
    }

    #[test]
    fn digest_properties() {
        let r = ring(1, Cipher::Aes256Gcm);
        let d = r.digest(&[b"ab", b"c"]);
        assert_eq!(d, r.digest(&[b"ab", b"c"]));
        assert_ne!(d, r.digest(&[b"a", b"bc"]));
        assert_ne!(d, r.digest(&[b"abc"]));
        assert_ne!(r.digest(&[]), r.digest(&[b""]));
        assert_ne!(r.digest(&[b""]), r.digest(&[b"", b""]));
        assert_ne!(d, ring(2, Cipher::Aes256Gcm).digest(&[b"ab", b"c"]));
        // Separate subkey: a one-part digest is not a blind index in disguise.
        assert_ne!(r.digest(&[b"name\x00x"]), r.blind_index(Field::Name, "x"));
    }

    #[test]
    fn check_value_verifies_with_right_key() {
        for cipher in CIPHERS {
            let r = ring(1, cipher);
            let check = r.check_value();
            r.verify_check_value(&check).unwrap();
            // Either cipher setting can read it, and so can a ring where the key is now a previous one.
            ring(1, Cipher::Aes256Gcm)
                .verify_check_value(&check)
                .unwrap();
            ring(1, Cipher::Sm4Gcm).verify_check_value(&check).unwrap();
            KeyRing::new(key(2), vec![key(1)], cipher)
                .verify_check_value(&check)
                .unwrap();
        }
    }

    #[test]
    fn check_value_rejects_wrong_key() {
        let created = ring(1, Cipher::Aes256Gcm);
        let check = created.check_value();
        let other = ring(2, Cipher::Aes256Gcm);
        let err = other.verify_check_value(&check).unwrap_err();
        match &err {
            CryptoError::WrongKey {
                expected,
                configured,
            } => {
                assert_eq!(expected, &key(1).key_id());
                assert_eq!(configured, &key(2).key_id());
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "wrong master key: this database was set up with key {} but the configured key is {}",
                key(1).key_id(),
                key(2).key_id()
            )
        );

        let mut tampered = check.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            created.verify_check_value(&tampered),
            Err(CryptoError::WrongKey { .. })
        ));

        let not_the_check_text = created.encrypt(Field::Other, b"something else");
        assert!(matches!(
            created.verify_check_value(&not_the_check_text),
            Err(CryptoError::WrongKey { .. })
        ));
        let wrong_field = created.encrypt(Field::Name, CHECK_PLAINTEXT);
        assert!(matches!(
            created.verify_check_value(&wrong_field),
            Err(CryptoError::WrongKey { .. })
        ));
        assert!(matches!(
            created.verify_check_value(b"garbage"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn key_list_parsing() {
        let (a, b, c) = (key(1).to_base64(), key(2).to_base64(), key(3).to_base64());
        let ids = vec![key(1).key_id(), key(2).key_id(), key(3).key_id()];
        for list in [
            format!("{a},{b},{c}"),
            format!("{a} {b}\t{c}"),
            format!("{a}\n{b}\r\n{c}\n"),
            format!("  {a}, {b} ,\n\n{c},"),
        ] {
            let r = KeyRing::from_key_list(&list, Cipher::Sm4Gcm).unwrap();
            assert_eq!(r.key_ids(), ids, "{list:?}");
            assert_eq!(r.cipher(), Cipher::Sm4Gcm);
        }

        let single = KeyRing::from_key_list(&a, Cipher::Aes256Gcm).unwrap();
        assert_eq!(single.key_ids(), vec![key(1).key_id()]);
        assert_eq!(single.cipher(), Cipher::Aes256Gcm);

        let dup = KeyRing::from_key_list(&format!("{a},{a},{b}"), Cipher::Aes256Gcm).unwrap();
        assert_eq!(dup.key_ids(), vec![key(1).key_id(), key(2).key_id()]);

        for empty in ["", "  ", " ,\n, "] {
            let err = KeyRing::from_key_list(empty, Cipher::Aes256Gcm).unwrap_err();
            assert!(matches!(err, CryptoError::InvalidKey(_)));
            assert!(err.to_string().contains("32 bytes"), "{err}");
        }

        let err = KeyRing::from_key_list(&format!("{a},AAAA"), Cipher::Aes256Gcm).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("key 2 of 2") && msg.contains("32 bytes"),
            "{msg}"
        );
        assert!(!msg.contains(&a), "{msg}");
    }

    #[test]
    fn debug_hides_keys() {
        let r = KeyRing::new(key(1), vec![key(2)], Cipher::Sm4Gcm);
        let dbg = format!("{r:?}");
        assert!(
            dbg.contains(&key(1).key_id()) && dbg.contains(&key(2).key_id()),
            "{dbg}"
        );
        assert!(!dbg.contains(&key(1).to_base64()) && !dbg.contains(&key(2).to_base64()));
    }

    #[test]
    fn ring_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<KeyRing>();
        assert_send_sync::<MasterKey>();
    }

    #[test]
    fn ciphertext_key_id_rejects_foreign_bytes() {
        assert_eq!(ciphertext_key_id(b""), None);
        assert_eq!(ciphertext_key_id(&[0u8; 64]), None);
    }

    /// GB/T 32907-2016 appendix A, example 1: proves `sm4::Sm4` is really SM4.
    #[test]
    fn sm4_block_test_vector() {
        use aes_gcm::aes::cipher::{BlockEncrypt, KeyInit as _};
        let k = unhex("0123456789abcdeffedcba9876543210");
        let cipher = Sm4::new_from_slice(&k).unwrap();
        let mut block = GenericArray::clone_from_slice(&k);
        cipher.encrypt_block(&mut block);
        assert_eq!(hex(&block), "681edf34d206965e86b3e94f536e4246");
    }

    /// RFC 8998 appendix A.1: proves the SM4-GCM composition, not just the block cipher.
    #[test]
    fn sm4_gcm_test_vector() {
        let k = unhex("0123456789abcdeffedcba9876543210");
        let nonce = unhex("00001234567800000000abcd");
        let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let mut buf = unhex(concat!(
            "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd",
            "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa"
        ));
        let gcm = Sm4Gcm::new(GenericArray::from_slice(&k));
        let tag = gcm
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &aad, &mut buf)
            .unwrap();
        assert_eq!(
            hex(&buf),
            concat!(
                "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735",
                "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
            )
        );
        assert_eq!(hex(&tag), "83de3541e4c2b58177e065a9bf7b62ec");
    }

    /// Values written by this version; if a change breaks these, existing databases become unreadable.
    /// The AES-256-GCM one was also checked with Python's `cryptography` and `hmac` modules.
    #[test]
    fn pinned_format_stays_readable() {
        let r = ring(1, Cipher::Aes256Gcm);
        assert_eq!(r.active_key_id(), "c553b96e700f751a");
        for golden in [
            "0101c553b96e700f751a8af967f29cb2eeba8410b82cd45d4113756a8f93fdfcc9518e7087ca83bfa723bb57",
            "0102c553b96e700f751aa18d41e6d726ba33a354a9d91195c8b125a15db53a5707bd3c6eae2964e257118c8b",
        ] {
            assert_eq!(r.decrypt_str(Field::Name, &unhex(golden)).unwrap(), "张三");
        }
        assert_eq!(
            hex(&r.blind_index(Field::IdNumber, "110101199003077777")),
            "d7824df27f10cff524ad422af70b800c"
        );
        assert_eq!(
            hex(&r.digest(&[b"ab", b"c"])),
            "3f11ea6d182208b7c92b8477eb5695ad"
        );
    }
}
