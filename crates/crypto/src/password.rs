//! Password hashing (Argon2id, PHC strings) and one-time passwords for staff accounts.
//!
//! Parameters follow the OWASP recommendation for Argon2id: 19 MiB of memory, two
//! passes, one lane. They are written into every PHC string, so raising them later
//! only affects new hashes; old ones still verify with the parameters they record.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::random::fill_random;
use crate::CryptoError;

/// Memory cost in KiB (19 MiB).
const M_COST_KIB: u32 = 19_456;
/// Number of passes over the memory.
const T_COST: u32 = 2;
/// Lanes; more would only help with the `parallel` feature, which we leave off.
const P_COST: u32 = 1;
/// Salt length in bytes; 16 is the PHC recommendation.
const SALT_LEN: usize = 16;

/// Length of a generated one-time password.
const GENERATED_LEN: usize = 16;
/// Letters and digits that cannot be mistaken for one another when read aloud or
/// copied from paper: no 0/O, no 1/l/I, no i/o either.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn hasher() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with Argon2id and a fresh random salt, returning the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) to store.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    fill_random(&mut salt)?;
    hash_with_salt(password, &salt)
}

fn hash_with_salt(password: &str, salt: &[u8]) -> Result<String, CryptoError> {
    let salt =
        SaltString::encode_b64(salt).map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Checks `password` against a stored PHC string.
///
/// Returns `false` for a wrong password and for a hash that cannot be parsed, so a
/// corrupt row locks the account rather than crashing the login. The cost
/// parameters are taken from the hash itself.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // Only Argon2id hashes are ever written; refusing the other variants keeps a
    // tampered row from downgrading to Argon2d (side channels) or Argon2i.
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    match hasher() {
        Ok(argon2) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Runs one full verification against a fixed hash and discards the result.
///
/// Call it when a login names an unknown user, so that the response takes as long
/// as a wrong password for a real one and does not reveal which accounts exist.
/// The hash is computed on first use (which therefore costs two hashes); calling
/// `dummy_verify("")` once at start-up avoids that.
pub fn dummy_verify(password: &str) {
    static DUMMY_HASH: OnceLock<Option<String>> = OnceLock::new();
    // A fixed salt keeps this independent of the random number generator: the hash
    // protects nothing, it only has to cost the same as a real one.
    let phc = DUMMY_HASH
        .get_or_init(|| hash_with_salt("lifecert/dummy-password", b"lifecert/dummy/1").ok());
    if let Some(phc) = phc {
        std::hint::black_box(verify_password(password, phc));
    }
}

/// Makes a 16-character one-time password from an unambiguous alphabet of 55
/// characters (about 92 bits), for new accounts and resets.
pub fn generate_password() -> Result<String, CryptoError> {
    // Bytes at or above the largest multiple of the alphabet size are discarded so
    // that every character is equally likely (plain `% 55` would favour the first ones).
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(GENERATED_LEN);
    let mut buf = [0u8; 32];
    while out.len() < GENERATED_LEN {
        fill_random(&mut buf)?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < GENERATED_LEN {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every hash or verification costs ~20 MiB and tens of milliseconds, so the tests
    // below run six in all.

    #[test]
    fn hash_then_verify_with_distinct_salts() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert_ne!(hash_password("correct horse").unwrap(), phc);
    }

    #[test]
    fn malformed_hashes_are_rejected_without_panicking() {
        // These all fail at parsing or parameter checks, before any hashing.
        for bad in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2d$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!!$????",
        ] {
            assert!(!verify_password("x", bad), "{bad:?}");
        }
    }

    #[test]
    fn dummy_verify_runs() {
        // The first call also computes the dummy hash: two Argon2 runs.
        dummy_verify("anything");
    }

    #[test]
    fn generated_passwords_use_the_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = generate_password().unwrap();
            assert_eq!(p.len(), GENERATED_LEN);
            assert!(p.bytes().all(|c| ALPHABET.contains(&c)), "{p}");
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']), "{p}");
            seen.extend(p.bytes());
            assert!(seen.len() <= ALPHABET.len());
        }
        // 3200 draws from 55 characters: missing any one has odds of about 55·e^-58.
        assert_eq!(seen.len(), ALPHABET.len());
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_ne!(a, b);
    }
}
