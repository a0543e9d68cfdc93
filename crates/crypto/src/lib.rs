//! Field encryption, blind indexes and master key handling for lifecert's personal data.
//!
//! Personal data (names, national ID numbers, phones, addresses, bank accounts) is
//! stored only as authenticated ciphertext. The master key lives in
//! `LIFECERT_MASTER_KEY` or a key file ([`load_key_file`], [`create_key_file`]),
//! never in the database.
//!
//! # Keys
//!
//! A [`MasterKey`] is 32 random bytes, written as standard base64. Its public
//! [key id](MasterKey::key_id) is the first 8 bytes of `HMAC-SHA256(key,
//! "lifecert/key-id/v1")` in hex. Working keys are derived as
//! `HMAC-SHA256(master, label)`: `lifecert/enc/v1` for encryption (SM4 uses its
//! first 16 bytes), `lifecert/bidx/v1` for blind indexes and `lifecert/digest/v1`
//! for row digests.
//!
//! # Ciphertext format
//!
//! ```text
//! byte 0        format version (1)
//! byte 1        cipher: 1 = AES-256-GCM, 2 = SM4-GCM
//! bytes 2..10   first 8 bytes of the key id
//! bytes 10..22  random 96-bit nonce
//! bytes 22..    ciphertext, then the 16-byte GCM tag
//! ```
//!
//! The associated data is bytes 0..10 followed by the [`Field`] label, so the header
//! cannot be altered and a value cannot be moved to another column. Decryption
//! chooses the key by the id in the header and the cipher by byte 1, so switching
//! the [`Cipher`] setting only affects new writes. A wrong key yields an error
//! ([`CryptoError::UnknownKeyId`] or [`CryptoError::Decrypt`]), never garbage; a new
//! database stores a [check value](KeyRing::check_value) so a wrong key is caught
//! at start-up ([`CryptoError::WrongKey`]).
//!
//! # Rotation
//!
//! A [`KeyRing`] holds one active key and any number of previous keys. New data is
//! encrypted under the active key; data under a previous key still decrypts, and can
//! be re-encrypted at leisure ([`ciphertext_key_id`] tells which rows need it).
//! Once nothing refers to a previous key it can be dropped from the ring.
//!
//! Blind indexes and row digests are computed with the ring's *index key*: the active
//! key unless [`KeyRing::with_index_key`] names another. lifecert pins it to the key a
//! database was set up with, so after rotation (`NEW,OLD`) look-ups keep working as
//! long as the old key stays in the ring. Retiring that key needs a re-index of every
//! stored blind index and digest, which is not built yet.
//!
//! # Credentials
//!
//! Staff passwords are hashed with Argon2id ([`hash_password`]); second factors are
//! RFC 6238 TOTP codes ([`TotpSecret`]); API keys and session tokens are random
//! bearer secrets stored only as SHA-256 hashes ([`generate_api_key`],
//! [`session_token`]).

mod apikey;
mod error;
mod key;
mod keyfile;
mod password;
mod random;
mod ring;
mod totp;

pub use apikey::{api_key_hash, constant_time_eq, generate_api_key, session_token};
pub use error::CryptoError;
pub use key::{Cipher, MasterKey, MASTER_KEY_LEN};
pub use keyfile::{create_key_file, key_file_warning, load_key_file};
pub use password::{dummy_verify, generate_password, hash_password, verify_password};
pub use ring::{ciphertext_key_id, Field, KeyRing, CIPHERTEXT_OVERHEAD};
pub use totp::TotpSecret;
