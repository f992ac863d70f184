//! The password hashes of mosquitto 2.0's password file, which Tern reads and writes.
//!
//! mosquitto_passwd 2.0 writes `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 with a
//! 12-byte salt and a 64-byte derived key, both in standard base64 with `=` padding. Mosquitto
//! 1.6 and earlier (and `mosquitto_passwd -H sha512`) wrote `$6$<salt>$<hash>` with
//! hash = SHA-512(password ‖ salt); Tern verifies those but never writes them.

use std::fmt;
use std::num::NonZeroU32;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, pbkdf2};
use subtle::ConstantTimeEq;

use crate::error::LineError;

/// PBKDF2 iterations Tern writes.
///
/// OWASP's 2023 figure for PBKDF2-HMAC-SHA512 is 210,000: measured with ring in a release
/// build on one core of a shared AMD EPYC, that is ~165 ms of CPU per verification, which every
/// CONNECT of a password user would pay, and a burst of reconnects (a broker restart with
/// thousands of clients) would queue behind it. Tern writes 50,000 instead, ~45 ms on that core
/// and about 500 times mosquitto_passwd's default of 101 (~0.1 ms). Verification runs on
/// tokio's blocking pool, not the async workers, and a successful verification is cached in
/// memory (see [`super::PasswordFile`]), so a client reconnecting with the same password pays
/// it once per broker run. Each entry keeps the count it was written with, so files from
/// mosquitto_passwd (`-I` sets the count) or an older Tern still verify.
pub const PBKDF2_ITERATIONS: u32 = 50_000;

/// Salt length Tern writes: 12 random bytes, as mosquitto_passwd writes. Not more, because
/// mosquitto 2.0 refuses a `$7$` salt of any other length (a 16-byte salt was tried, and the
/// `mosquitto_accepts_a_file_tern_wrote` test proves 12 works); Tern verifies any length.
const SALT_LEN: usize = 12;

/// Both formats store a full SHA-512 output.
const HASH_LEN: usize = 64;

/// Standard base64; `=` padding written, and accepted with or without it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_encode_padding(true).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PasswordHash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 { iterations: NonZeroU32, salt: Vec<u8>, hash: [u8; HASH_LEN] },
    /// `$6$`: SHA-512(password ‖ salt), mosquitto 1.x.
    Sha512 { salt: Vec<u8>, hash: [u8; HASH_LEN] },
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt and [`PBKDF2_ITERATIONS`].
    pub(crate) fn new(password: &[u8]) -> PasswordHash {
        Self::with_iterations(password, NonZeroU32::new(PBKDF2_ITERATIONS).expect("nonzero"))
    }

    pub(crate) fn with_iterations(password: &[u8], iterations: NonZeroU32) -> PasswordHash {
        let mut salt = vec![0; SALT_LEN];
        // The operating system's generator failing is not something a broker can work around.
        SystemRandom::new().fill(&mut salt).expect("the system random number generator failed");
        let mut hash = [0; HASH_LEN];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA512, iterations, &salt, password, &mut hash);
        PasswordHash::Pbkdf2Sha512 { iterations, salt, hash }
    }

    /// Parses the part of a password file line after `username:`.
    pub(crate) fn parse(text: &str) -> Result<PasswordHash, LineError> {
        if let Some(rest) = text.strip_prefix("$7$") {
            let mut fields = rest.split('$');
            let (Some(iterations), Some(salt), Some(hash), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(LineError::MalformedHash("expected $7$<iterations>$<salt>$<hash>"));
            };
            let iterations = iterations
                .parse::<NonZeroU32>()
                .map_err(|_| LineError::MalformedHash("the iteration count is not a positive number"))?;
            let (salt, hash) = decode_salt_and_hash(salt, hash)?;
            Ok(PasswordHash::Pbkdf2Sha512 { iterations, salt, hash })
        } else if let Some(rest) = text.strip_prefix("$6$") {
            let Some((salt, hash)) = rest.split_once('$') else {
                return Err(LineError::MalformedHash("expected $6$<salt>$<hash>"));
            };
            let (salt, hash) = decode_salt_and_hash(salt, hash)?;
            Ok(PasswordHash::Sha512 { salt, hash })
        } else {
            Err(LineError::UnknownHashFormat)
        }
    }

    /// Whether `password` is the one this hash was made from. Takes the full hashing time and
    /// compares in constant time, so timing tells nothing of how close a guess was.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                // ring's verify derives the key and compares it in constant time.
                pbkdf2::verify(pbkdf2::PBKDF2_HMAC_SHA512, *iterations, salt, password, hash).is_ok()
            }
            PasswordHash::Sha512 { salt, hash } => {
                let mut context = digest::Context::new(&digest::SHA512);
                context.update(password);
                context.update(salt);
                context.finish().as_ref().ct_eq(hash).into()
            }
        }
    }
}

fn decode_salt_and_hash(salt: &str, hash: &str) -> Result<(Vec<u8>, [u8; HASH_LEN]), LineError> {
    let salt = BASE64.decode(salt).map_err(|_| LineError::MalformedHash("the salt is not base64"))?;
    if salt.is_empty() {
        return Err(LineError::MalformedHash("the salt is empty"));
    }
    let hash = BASE64.decode(hash).map_err(|_| LineError::MalformedHash("the hash is not base64"))?;
    let hash = <[u8; HASH_LEN]>::try_from(hash)
        .map_err(|_| LineError::MalformedHash("the hash is not 64 bytes (a SHA-512 output)"))?;
    Ok((salt, hash))
}

/// The form stored in the file, after `username:`.
impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                write!(f, "$7${iterations}${}${}", BASE64.encode(salt), BASE64.encode(hash))
            }
            PasswordHash::Sha512 { salt, hash } => write!(f, "$6${}${}", BASE64.encode(salt), BASE64.encode(hash)),
        }
    }
}

/// Hides the salt and hash: an offline guessing attack needs both.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Pbkdf2Sha512 { iterations, .. } => write!(f, "Pbkdf2Sha512 {{ iterations: {iterations} }}"),
            PasswordHash::Sha512 { .. } => f.write_str("Sha512"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `mosquitto_passwd -b` 2.0.11 for user / "pass".
    const MOSQUITTO_7: &str = "$7$101$plw05fhdvkYOm4I0$5RYsgRBhJ3DFVuKNNoOGyoUJ7+Tt5oRJziFbCfZegT8A3HE2RUS3g1sU/u+h+mwOl2/6L7rfxlOHnpY0UvNcXw==";
    /// Written by `mosquitto_passwd -H sha512 -b` 2.0.11 for u / "p".
    const MOSQUITTO_6: &str =
        "$6$lGXPCRLtJgroNvMw$IkvksBsvdkQA7psbl3zxs5/cFNytFZep9IuWPrcoL8+u+OSTWCvepR/hdnWMfUjn137CcJnx0U/CeCbmgKCZ3w==";

    #[test]
    fn verifies_what_mosquitto_passwd_wrote() {
        let seven = PasswordHash::parse(MOSQUITTO_7).unwrap();
        assert!(seven.verify(b"pass"));
        assert!(!seven.verify(b"pass "));
        let six = PasswordHash::parse(MOSQUITTO_6).unwrap();
        assert!(six.verify(b"p"));
        assert!(!six.verify(b"q"));
    }

    #[test]
    fn written_form_parses_back_to_the_same_hash() {
        let hash = PasswordHash::with_iterations(b"secret", NonZeroU32::new(10).unwrap());
        let text = hash.to_string();
        assert!(text.starts_with("$7$10$"), "{text}");
        assert_eq!(PasswordHash::parse(&text).unwrap(), hash);
        assert_eq!(PasswordHash::parse(MOSQUITTO_7).unwrap().to_string(), MOSQUITTO_7);
    }

    #[test]
    fn new_hashes_use_the_strong_setting_and_fresh_salts() {
        let (a, b) = (PasswordHash::new(b"pw"), PasswordHash::new(b"pw"));
        assert_ne!(a, b, "two hashes of one password share a salt");
        let PasswordHash::Pbkdf2Sha512 { iterations, salt, .. } = &a else { panic!("not PBKDF2: {a:?}") };
        assert_eq!(iterations.get(), PBKDF2_ITERATIONS);
        assert_eq!(salt.len(), SALT_LEN);
        assert!(a.verify(b"pw") && !a.verify(b"pW"));
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let unpadded = MOSQUITTO_6.trim_end_matches('=');
        assert!(PasswordHash::parse(unpadded).unwrap().verify(b"p"));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for (text, expected) in [
            ("plain", LineError::UnknownHashFormat),
            ("$5$abc$def", LineError::UnknownHashFormat),
            ("$7$0$cGx3$cGx3", LineError::MalformedHash("the iteration count is not a positive number")),
            ("$7$x$cGx3$cGx3", LineError::MalformedHash("the iteration count is not a positive number")),
            ("$7$101$cGx3", LineError::MalformedHash("expected $7$<iterations>$<salt>$<hash>")),
            ("$7$101$a$b$c", LineError::MalformedHash("expected $7$<iterations>$<salt>$<hash>")),
            ("$6$cGx3", LineError::MalformedHash("expected $6$<salt>$<hash>")),
            ("$6$!!$cGx3", LineError::MalformedHash("the salt is not base64")),
            ("$6$$cGx3", LineError::MalformedHash("the salt is empty")),
            ("$6$cGx3$cGx3", LineError::MalformedHash("the hash is not 64 bytes (a SHA-512 output)")),
        ] {
            assert_eq!(PasswordHash::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn debug_hides_salt_and_hash() {
        let debug = format!("{:?}", PasswordHash::parse(MOSQUITTO_7).unwrap());
        assert_eq!(debug, "Pbkdf2Sha512 { iterations: 101 }");
    }
}
