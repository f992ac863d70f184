//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the stored credentials, the file that
//! holds them, and the server side of the exchange, for MQTT 5.0 enhanced authentication.
//!
//! The server never sees a password: the file keeps, per user and mechanism, the salt, the
//! iteration count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`, in PostgreSQL's format. A client proves it
//! knows the password without sending it, and the server proves in turn that it holds the
//! user's keys. The exchange here is a pure state machine, [`ScramServer`]: bytes in, bytes
//! out, no I/O, so tern-server drives it over AUTH packets and the tests drive it directly.
//!
//! Not supported: channel binding (`p=`; a client saying `y` is accepted, as RFC 5802 allows
//! when the server does not offer `-PLUS` mechanisms), authorization identities (`a=`), and
//! SASLprep: passwords are used as their UTF-8 bytes, which is what SASLprep leaves of any
//! ASCII password.

mod file;
mod server;

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

pub use file::ScramFile;
pub use server::{ScramError, ScramServer};

/// Iterations `tern passwd --scram` writes for SCRAM-SHA-256: RFC 7677's minimum (section 4),
/// which PostgreSQL also uses.
///
/// Unlike the password file, the broker never runs PBKDF2 during a SCRAM exchange: each
/// connecting client does, with the salt and count the server sends. A higher count therefore
/// costs every client (often a small device) on every connection, and protects only the
/// stored keys against an offline guessing attack on a stolen file. 4096 is the floor
/// interoperable clients expect; raise it per user with `ScramFile::set` where clients can
/// afford more.
pub const SCRAM_SHA_256_ITERATIONS: u32 = 4096;

/// Iterations written for SCRAM-SHA-512: 10,000, the minimum the SCRAM-SHA-512 draft
/// (draft-melnikov-scram-sha-512) recommends; see [`SCRAM_SHA_256_ITERATIONS`] for who pays.
pub const SCRAM_SHA_512_ITERATIONS: u32 = 10_000;

/// Salt length written: 16 random bytes, as PostgreSQL writes.
const SALT_LEN: usize = 16;

/// A SCRAM mechanism, named as in MQTT's Authentication Method property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms, in the order `ScramFile::set` writes them.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name: `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of an Authentication Method, if it is one of ours (case-sensitive, as
    /// SASL mechanism names are registered in upper case).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|mechanism| mechanism.name() == name)
    }

    /// The iteration count written when none is given.
    pub fn default_iterations(self) -> NonZeroU32 {
        let iterations = match self {
            ScramMechanism::Sha256 => SCRAM_SHA_256_ITERATIONS,
            ScramMechanism::Sha512 => SCRAM_SHA_512_ITERATIONS,
        };
        NonZeroU32::new(iterations).expect("nonzero")
    }

    /// Bytes of the hash output, which is also the length of every key.
    pub fn key_len(self) -> usize {
        self.digest().output_len()
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// HMAC(key, message) with this mechanism's hash.
    fn sign(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), message).as_ref().to_vec()
    }

    /// H(message).
    fn hash(self, message: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), message).as_ref().to_vec()
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server stores for one user and mechanism (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub mechanism: ScramMechanism,
    pub iterations: NonZeroU32,
    pub salt: Vec<u8>,
    /// H(ClientKey): verifies a ClientProof without being able to produce one.
    pub stored_key: Vec<u8>,
    /// Signs the server's final message, proving the server knows the user.
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derives the keys of `password` with a fresh random salt.
    pub fn generate(mechanism: ScramMechanism, password: &[u8], iterations: NonZeroU32) -> ScramCredentials {
        let mut salt = vec![0; SALT_LEN];
        // The operating system's generator failing is not something a broker can work around.
        SystemRandom::new().fill(&mut salt).expect("the system random number generator failed");
        ScramCredentials::derive(mechanism, password, salt, iterations)
    }

    /// Derives the keys of `password` with `salt`: SaltedPassword = PBKDF2(password, salt,
    /// iterations), then StoredKey and ServerKey as RFC 5802 section 3 defines them.
    pub fn derive(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: NonZeroU32,
    ) -> ScramCredentials {
        let mut salted_password = vec![0; mechanism.key_len()];
        pbkdf2::derive(mechanism.pbkdf2(), iterations, &salt, password, &mut salted_password);
        let client_key = mechanism.sign(&salted_password, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let server_key = mechanism.sign(&salted_password, b"Server Key");
        ScramCredentials { mechanism, iterations, salt, stored_key, server_key }
    }
}

/// The form stored in the file after `username:`, PostgreSQL's:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 with padding.
impl fmt::Display for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}${}:{}${}:{}",
            self.mechanism,
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }
}

/// Hides the salt and keys: with them, a guessing attack can run offline.
impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}
