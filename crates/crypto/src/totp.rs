//! Time-based one-time passwords (RFC 6238) for staff second-factor login.
//!
//! The settings are the ones every authenticator app assumes when an `otpauth://`
//! URI does not say otherwise: HMAC-SHA1, 6 digits, 30-second steps. Other
//! settings are spelled out in the URI too, but several apps ignore them.

use std::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::apikey::constant_time_eq;
use crate::random::fill_random;
use crate::CryptoError;

type HmacSha1 = Hmac<Sha1>;

/// Digits per code.
const DIGITS: usize = 6;
/// 10^DIGITS.
const MODULUS: u32 = 1_000_000;
/// Length of a time step in seconds.
const PERIOD: u64 = 30;
/// Generated secret length: 160 bits, the length RFC 4226 recommends (and SHA-1's output size).
const SECRET_LEN: usize = 20;
/// RFC 4226 requires at least 128 bits of shared secret.
const MIN_SECRET_LEN: usize = 16;

/// A TOTP shared secret. `Debug` does not show it.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// Makes a new 20-byte secret from the operating system's random number generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = vec![0u8; SECRET_LEN];
        fill_random(&mut bytes)?;
        Ok(TotpSecret(bytes))
    }

    /// Parses base32 (RFC 4648 alphabet), as written by [`TotpSecret::to_base32`].
    ///
    /// Case, spaces and trailing `=` padding are ignored, since people copy secrets
    /// in groups and authenticator apps show them in either case. The error never
    /// echoes the input.
    pub fn from_base32(s: &str) -> Result<Self, CryptoError> {
        let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let cleaned = cleaned.trim_end_matches('=');
        let bytes = base32_decode(cleaned).ok_or_else(|| {
            CryptoError::TotpSecret("not valid base32 (letters A-Z and digits 2-7)".to_string())
        })?;
        if bytes.len() < MIN_SECRET_LEN {
            return Err(CryptoError::TotpSecret(format!(
                "{} bytes long, at least {MIN_SECRET_LEN} are required",
                bytes.len()
            )));
        }
        Ok(TotpSecret(bytes))
    }

    /// Upper-case base32 without padding, the form authenticator apps accept.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }

    /// The code for the time step containing `unix_seconds`: 6 digits, zero-padded.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.code_for_step(unix_seconds / PERIOD)
    }

    /// Checks `code` against the step containing `unix_seconds` and its two
    /// neighbours (a phone clock up to about 30 s off still works).
    ///
    /// Returns the time step that matched. The caller must store it and refuse any
    /// later login whose step is not greater than the stored one, or a code seen
    /// over someone's shoulder could be used again within its 90-second window.
    /// Anything other than exactly 6 ASCII digits is rejected; trimming user input
    /// is the caller's job.
    pub fn verify(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        let code = code.as_bytes();
        if code.len() != DIGITS || !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let step = unix_seconds / PERIOD;
        // All three candidates are always computed and compared, so the time taken
        // does not tell which one (if any) matched. The current step goes first so
        // that it wins the (one in a million) case of two steps sharing a code.
        let mut matched = None;
        for candidate in [Some(step), step.checked_sub(1), step.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let ok = constant_time_eq(self.code_for_step(candidate).as_bytes(), code);
            if ok && matched.is_none() {
                matched = Some(candidate);
            }
        }
        matched
    }

    /// The `otpauth://` URI to show as a QR code when enrolling an authenticator app.
    ///
    /// Issuer and account are percent-encoded (UTF-8), so Chinese names are fine.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
            account = percent_encode(account),
            secret = self.to_base32(),
        )
    }

    /// HOTP (RFC 4226) with the step number as counter.
    fn code_for_step(&self, step: u64) -> String {
        // HMAC accepts keys of any length, so this cannot fail; the fallback only satisfies the type.
        let mut mac = <HmacSha1 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        // Dynamic truncation: the low nibble of the last byte picks 4 bytes, top bit cleared.
        let offset = usize::from(digest[digest.len() - 1] & 0x0f);
        let value = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        format!("{:0width$}", value % MODULUS, width = DIGITS)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, no padding.
fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 8).div_ceil(5));
    // At most 4 leftover bits plus one new byte are ever held.
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = ((buffer << 8) | u32::from(byte)) & 0xfff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[((buffer >> bits) & 31) as usize],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[((buffer << (5 - bits)) & 31) as usize],
        ));
    }
    out
}

/// Inverse of [`base32_encode`], accepting either case; `None` on a bad character
/// or a length no byte string encodes to (1, 3 or 6 characters past a multiple of 8).
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    if matches!(s.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = ((buffer << 5) | u32::from(value)) & 0xfff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        let s = rfc_secret();
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(s.code_at(time), code, "t={time}");
            assert_eq!(s.verify(code, time), Some(time / 30), "t={time}");
        }
    }

    #[test]
    fn accepts_one_step_of_drift_either_way() {
        let s = rfc_secret();
        let t = 1_111_111_109; // step 37037036
        let step = t / 30;
        let code = s.code_at(t);
        assert_eq!(s.verify(&code, t + 30), Some(step), "phone one step behind");
        assert_eq!(s.verify(&code, t - 30), Some(step), "phone one step ahead");
        assert_eq!(s.verify(&code, t + 60), None);
        assert_eq!(s.verify(&code, t - 60), None);
        // Same step, any second within it.
        assert_eq!(s.verify(&code, step * 30), Some(step));
        assert_eq!(s.verify(&code, step * 30 + 29), Some(step));
    }

    #[test]
    fn returns_the_matched_step_for_replay_checks() {
        let s = rfc_secret();
        let now = 2_000_000_000;
        let previous = s.code_at(now - 30);
        let next = s.code_at(now + 30);
        assert_eq!(s.verify(&previous, now), Some(now / 30 - 1));
        assert_eq!(s.verify(&next, now), Some(now / 30 + 1));
        // The same code submitted twice yields the same step, which the caller refuses.
        assert_eq!(s.verify(&previous, now + 1), s.verify(&previous, now));
    }

    #[test]
    fn works_at_time_zero() {
        let s = rfc_secret();
        let code = s.code_at(0);
        assert_eq!(s.verify(&code, 0), Some(0));
        assert_eq!(s.verify(&s.code_at(30), 0), Some(1));
    }

    #[test]
    fn rejects_malformed_codes() {
        let s = rfc_secret();
        for bad in [
            "",
            "28708",
            "2870820",
            " 287082",
            "287082 ",
            "28708a",
            "２８７０８２",
            "-28708",
            "+28708",
        ] {
            assert_eq!(s.verify(bad, 59), None, "{bad:?}");
        }
        assert_eq!(s.verify("287083", 59), None);
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), encoded, "{plain:?}");
            assert_eq!(
                base32_decode(encoded).unwrap(),
                plain.as_bytes(),
                "{encoded}"
            );
            assert_eq!(
                base32_decode(&encoded.to_ascii_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
        for bad in ["M", "MZX", "MZXW6Y", "MZ1Q", "MZ8Q", "MZ=Q"] {
            assert_eq!(base32_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn base32_round_trip_all_lengths() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..=data.len() {
            let slice = &data[..len];
            let encoded = base32_encode(slice);
            assert!(!encoded.contains('='));
            assert_eq!(base32_decode(&encoded).unwrap(), slice, "len {len}");
        }
    }

    #[test]
    fn secret_round_trip_and_lenient_parsing() {
        let s = TotpSecret::generate().unwrap();
        assert_eq!(s.0.len(), 20);
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        assert_eq!(TotpSecret::from_base32(&b32).unwrap().0, s.0);

        // The RFC secret, as typed by a person: grouped, lower case, padded.
        let rfc = rfc_secret();
        assert_eq!(rfc.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let typed = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
        assert_eq!(TotpSecret::from_base32(typed).unwrap().0, rfc.0);
        assert_ne!(TotpSecret::generate().unwrap().0, s.0);
    }

    #[test]
    fn from_base32_rejects_bad_and_short_secrets_without_echoing() {
        let err = TotpSecret::from_base32("GEZDGNBV!Y3TQOJQ").unwrap_err();
        assert!(matches!(err, CryptoError::TotpSecret(_)));
        assert!(!err.to_string().contains("GEZDGNBV"), "{err}");
        // 10 bytes: too short to be a secret worth having.
        let err = TotpSecret::from_base32("GEZDGNBVGY3TQOJQ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid TOTP secret: 10 bytes long, at least 16 are required"
        );
        assert!(TotpSecret::from_base32("").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = rfc_secret();
        let debug = format!("{s:?}");
        assert_eq!(debug, "TotpSecret(..)");
        assert!(!debug.contains("GEZDGNBV"));
    }

    #[test]
    fn otpauth_uri_format() {
        let s = rfc_secret();
        assert_eq!(
            s.otpauth_uri("Lifecert", "alice@example.org"),
            "otpauth://totp/Lifecert:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Lifecert&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            s.otpauth_uri("人社局 A&B", "张三:1"),
            "otpauth://totp/%E4%BA%BA%E7%A4%BE%E5%B1%80%20A%26B:%E5%BC%A0%E4%B8%89%3A1?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=%E4%BA%BA%E7%A4%BE%E5%B1%80%20A%26B&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("aZ09-._~ /?#"), "aZ09-._~%20%2F%3F%23");
    }
}
