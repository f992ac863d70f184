//! The server side of a SCRAM exchange (RFC 5802 section 5) as a state machine:
//! [`ScramServer::start`] takes client-first and answers server-first,
//! [`ScramServer::finish`] takes client-final and answers server-final or refuses.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use super::{ScramCredentials, ScramMechanism, SALT_LEN};

/// Random bytes in the server's part of the nonce; base64 makes them 32 characters.
const SERVER_NONCE_LEN: usize = 24;

/// Why an exchange failed. The messages name the rule broken and never quote the client's
/// data, so they can be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=`), which Tern does not offer.
    #[error("channel binding is not supported")]
    ChannelBindingNotSupported,
    /// An `a=` authorization identity: Tern authenticates users, it does not let them act as
    /// another.
    #[error("an authorization identity is not supported")]
    AuthorizationIdentityNotSupported,
    /// `m=`: RFC 5802 reserves it; a server that does not know the extension must fail.
    #[error("mandatory extension not supported")]
    MandatoryExtension,
    /// client-final's `c=` is not the base64 of client-first's GS2 header.
    #[error("the channel binding data does not match the GS2 header")]
    ChannelBindingMismatch,
    /// client-final's nonce is not the one of server-first.
    #[error("the nonce does not match")]
    NonceMismatch,
    /// A wrong password or an unknown user: deliberately the same error.
    #[error("invalid client proof")]
    InvalidProof,
}

/// An exchange between server-first and client-final.
pub struct ScramServer {
    credentials: ScramCredentials,
    /// False when the user is unknown and `credentials` are made up: `finish` then fails after
    /// the same work as for a wrong password.
    known: bool,
    username: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// The client's nonce followed by the server's.
    nonce: String,
}

impl ScramServer {
    /// Reads client-first for `mechanism` and answers server-first. `lookup` gives the
    /// credentials of a user name; for a user it does not know, the exchange goes on with a
    /// made-up salt and iteration count that stay the same for that name for the life of the
    /// process, so server-first does not reveal which users exist. `finish` then fails as for
    /// a wrong password.
    pub fn start(
        lookup: impl FnOnce(&str) -> Option<ScramCredentials>,
        mechanism: ScramMechanism,
        client_first: &[u8],
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let mut nonce = [0u8; SERVER_NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system random number generator failed");
        ScramServer::start_with_nonce(lookup, mechanism, client_first, &BASE64.encode(nonce))
    }

    fn start_with_nonce(
        lookup: impl FnOnce(&str) -> Option<ScramCredentials>,
        mechanism: ScramMechanism,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let client_first = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (gs2_header, client_first_bare) = split_gs2_header(client_first)?;
        let mut fields = client_first_bare.split(',');
        let username = match fields.next() {
            Some(field) if field.starts_with("m=") => return Err(ScramError::MandatoryExtension),
            Some(field) => decode_username(field.strip_prefix("n=").ok_or(ScramError::Malformed("expected n="))?)?,
            None => return Err(ScramError::Malformed("expected n=")),
        };
        let client_nonce =
            fields.next().and_then(|field| field.strip_prefix("r=")).ok_or(ScramError::Malformed("expected r="))?;
        validate_nonce(client_nonce)?;
        // Further fields are optional extensions, which a server ignores (RFC 5802 section 5.1).

        let (credentials, known) = match lookup(&username) {
            Some(credentials) if credentials.mechanism == mechanism => (credentials, true),
            _ => (made_up_credentials(mechanism, &username), false),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&credentials.salt), credentials.iterations);
        let reply = server_first.clone().into_bytes();
        let server = ScramServer {
            credentials,
            known,
            username,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: client_first_bare.to_owned(),
            server_first,
            nonce,
        };
        Ok((server, reply))
    }

    /// Checks client-final's proof; on success returns the authenticated user name and
    /// server-final (`v=<ServerSignature>`), which lets the client check the server in turn.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let client_final = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // The proof is the last attribute (RFC 5802 section 7, client-final-message).
        let (without_proof, proof) = client_final.rsplit_once(",p=").ok_or(ScramError::Malformed("expected p="))?;
        let mut fields = without_proof.split(',');
        let channel_binding =
            fields.next().and_then(|field| field.strip_prefix("c=")).ok_or(ScramError::Malformed("expected c="))?;
        let nonce =
            fields.next().and_then(|field| field.strip_prefix("r=")).ok_or(ScramError::Malformed("expected r="))?;
        if channel_binding != BASE64.encode(&self.gs2_header) {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if nonce != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let mechanism = self.credentials.mechanism;
        let proof = BASE64.decode(proof).map_err(|_| ScramError::Malformed("the proof is not base64"))?;
        if proof.len() != mechanism.key_len() {
            return Err(ScramError::Malformed("the proof is not as long as the mechanism's hash"));
        }

        let auth_message = format!("{},{},{}", self.client_first_bare, self.server_first, without_proof);
        let client_signature = mechanism.sign(&self.credentials.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        let matches: bool = mechanism.hash(&client_key).ct_eq(&self.credentials.stored_key).into();
        if !(matches && self.known) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = mechanism.sign(&self.credentials.server_key, auth_message.as_bytes());
        Ok((self.username, format!("v={}", BASE64.encode(server_signature)).into_bytes()))
    }

    /// The user name client-first gave, known or not.
    pub fn username(&self) -> &str {
        &self.username
    }
}

/// Hides the keys and the messages.
impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.credentials.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Splits `n,,` or `y,,` off client-first. `p=` asks for channel binding, which no mechanism
/// Tern offers has (there is no `-PLUS`); `y` says the client could bind but thinks the server
/// cannot, which is true.
fn split_gs2_header(client_first: &str) -> Result<(&str, &str), ScramError> {
    let (flag, rest) = client_first.split_once(',').ok_or(ScramError::Malformed("expected a GS2 header"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => return Err(ScramError::ChannelBindingNotSupported),
        _ => return Err(ScramError::Malformed("the GS2 header must start with n, y or p=")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed("expected a GS2 header"))?;
    if !authzid.is_empty() {
        return Err(ScramError::AuthorizationIdentityNotSupported);
    }
    let header_len = flag.len() + 2;
    Ok((&client_first[..header_len], bare))
}

/// Decodes a saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_username(saslname: &str) -> Result<String, ScramError> {
    let mut username = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(at) = rest.find('=') {
        username.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => username.push(','),
            Some("=3D") => username.push('='),
            _ => return Err(ScramError::Malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    username.push_str(rest);
    if username.is_empty() {
        return Err(ScramError::Malformed("the user name is empty"));
    }
    Ok(username)
}

/// A nonce is printable ASCII other than `,` (RFC 5802 section 7).
fn validate_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty() || !nonce.bytes().all(|byte| (0x21..=0x7e).contains(&byte) && byte != b',') {
        return Err(ScramError::Malformed("the nonce must be printable ASCII without commas"));
    }
    Ok(())
}

/// Credentials for a user name the lookup does not know: a salt derived from the name with a
/// key drawn once per process, the mechanism's default iteration count, and keys nobody can
/// match. Stable per name, so asking twice does not show the answer is invented.
fn made_up_credentials(mechanism: ScramMechanism, username: &str) -> ScramCredentials {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).expect("the system random number generator failed")
    });
    let tag = |label: &str| {
        let message = format!("{label}\0{mechanism}\0{username}");
        hmac::sign(key, message.as_bytes()).as_ref().to_vec()
    };
    let salt = tag("salt")[..SALT_LEN].to_vec();
    let mut stored_key = tag("stored");
    stored_key.resize(mechanism.key_len(), 0);
    let server_key = stored_key.clone();
    let iterations: NonZeroU32 = mechanism.default_iterations();
    ScramCredentials { mechanism, iterations, salt, stored_key, server_key }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SCRAM client for the tests: client-first, then client-final from server-first, then
    /// a check of server-final.
    struct TestClient {
        mechanism: ScramMechanism,
        password: Vec<u8>,
        client_first_bare: String,
        salted_password: Vec<u8>,
        auth_message: String,
    }

    impl TestClient {
        fn new(mechanism: ScramMechanism, username: &str, password: &str, nonce: &str) -> (TestClient, Vec<u8>) {
            let saslname = username.replace('=', "=3D").replace(',', "=2C");
            let client_first_bare = format!("n={saslname},r={nonce}");
            let first = format!("n,,{client_first_bare}").into_bytes();
            let client = TestClient {
                mechanism,
                password: password.as_bytes().to_vec(),
                client_first_bare,
                salted_password: Vec::new(),
                auth_message: String::new(),
            };
            (client, first)
        }

        fn respond(&mut self, server_first: &[u8]) -> Vec<u8> {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let field =
                |name: &str| server_first.split(',').find_map(|field| field.strip_prefix(name)).unwrap().to_owned();
            let (nonce, salt, iterations) = (field("r="), field("s="), field("i="));
            let salt = BASE64.decode(salt).unwrap();
            let iterations: NonZeroU32 = iterations.parse().unwrap();
            let mut salted = vec![0; self.mechanism.key_len()];
            ring::pbkdf2::derive(self.mechanism.pbkdf2(), iterations, &salt, &self.password, &mut salted);
            let without_proof = format!("c=biws,r={nonce}");
            self.auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
            let client_key = self.mechanism.sign(&salted, b"Client Key");
            let stored_key = self.mechanism.hash(&client_key);
            let signature = self.mechanism.sign(&stored_key, self.auth_message.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
            self.salted_password = salted;
            format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes()
        }

        fn server_final_verifies(&self, server_final: &[u8]) -> bool {
            let server_key = self.mechanism.sign(&self.salted_password, b"Server Key");
            let signature = self.mechanism.sign(&server_key, self.auth_message.as_bytes());
            server_final == format!("v={}", BASE64.encode(signature)).as_bytes()
        }
    }

    fn lookup_from(entries: Vec<(&'static str, ScramCredentials)>) -> impl Fn(&str) -> Option<ScramCredentials> {
        move |username| entries.iter().find(|(name, _)| *name == username).map(|(_, credentials)| credentials.clone())
    }

    fn credentials(mechanism: ScramMechanism, password: &str) -> ScramCredentials {
        ScramCredentials::generate(mechanism, password.as_bytes(), NonZeroU32::new(64).unwrap())
    }

    /// RFC 7677 section 3, byte for byte.
    #[test]
    fn rfc_7677_sha256_test_vector() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let stored = ScramCredentials::derive(ScramMechanism::Sha256, b"pencil", salt, NonZeroU32::new(4096).unwrap());
        let lookup = |username: &str| (username == "user").then(|| stored.clone());
        let (server, server_first) = ScramServer::start_with_nonce(
            lookup,
            ScramMechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&server_first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let (username, server_final) = server.finish(client_final).unwrap();
        assert_eq!(username, "user");
        assert_eq!(std::str::from_utf8(&server_final).unwrap(), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn round_trip_for_both_mechanisms() {
        for mechanism in ScramMechanism::ALL {
            let lookup = lookup_from(vec![("a,b=c", credentials(mechanism, "s3cret"))]);
            let (mut client, first) = TestClient::new(mechanism, "a,b=c", "s3cret", "clientnonce");
            let (server, server_first) = ScramServer::start(&lookup, mechanism, &first).unwrap();
            assert_eq!(server.username(), "a,b=c");
            let client_final = client.respond(&server_first);
            let (username, server_final) = server.finish(&client_final).unwrap();
            assert_eq!(username, "a,b=c");
            assert!(client.server_final_verifies(&server_final), "{mechanism}");
        }
    }

    #[test]
    fn server_nonce_is_fresh_and_long() {
        let lookup = lookup_from(vec![("u", credentials(ScramMechanism::Sha256, "pw"))]);
        let start = || ScramServer::start(&lookup, ScramMechanism::Sha256, b"n,,n=u,r=abc").unwrap().0.nonce;
        let (a, b) = (start(), start());
        assert_ne!(a, b);
        assert!(a.len() >= "abc".len() + 32, "{a}");
    }

    #[test]
    fn wrong_password_fails() {
        for mechanism in ScramMechanism::ALL {
            let lookup = lookup_from(vec![("u", credentials(mechanism, "right"))]);
            let (mut client, first) = TestClient::new(mechanism, "u", "wrong", "n0nce");
            let (server, server_first) = ScramServer::start(&lookup, mechanism, &first).unwrap();
            assert_eq!(server.finish(&client.respond(&server_first)).unwrap_err(), ScramError::InvalidProof);
        }
    }

    #[test]
    fn credentials_of_the_other_mechanism_do_not_count() {
        let lookup = lookup_from(vec![("u", credentials(ScramMechanism::Sha512, "pw"))]);
        let (mut client, first) = TestClient::new(ScramMechanism::Sha256, "u", "pw", "n0nce");
        let (server, server_first) = ScramServer::start(&lookup, ScramMechanism::Sha256, &first).unwrap();
        assert_eq!(server.finish(&client.respond(&server_first)).unwrap_err(), ScramError::InvalidProof);
    }

    #[test]
    fn unknown_user_gets_a_stable_made_up_salt_and_fails_at_finish() {
        let lookup = lookup_from(vec![("known", credentials(ScramMechanism::Sha256, "pw"))]);
        let first_for = |name: &str| {
            let (_, first) = TestClient::new(ScramMechanism::Sha256, name, "pw", "n0nce");
            let (_, server_first) = ScramServer::start(&lookup, ScramMechanism::Sha256, &first).unwrap();
            let server_first = String::from_utf8(server_first).unwrap();
            server_first.split_once(",s=").unwrap().1.to_owned()
        };
        assert_eq!(first_for("ghost"), first_for("ghost"));
        assert_ne!(first_for("ghost"), first_for("phantom"));
        assert!(first_for("ghost").ends_with(",i=4096"));

        let (mut client, first) = TestClient::new(ScramMechanism::Sha256, "ghost", "pw", "n0nce");
        let (server, server_first) = ScramServer::start(&lookup, ScramMechanism::Sha256, &first).unwrap();
        assert_eq!(server.finish(&client.respond(&server_first)).unwrap_err(), ScramError::InvalidProof);
    }

    #[test]
    fn tampered_messages_fail() {
        let mechanism = ScramMechanism::Sha256;
        let lookup = lookup_from(vec![("u", credentials(mechanism, "pw"))]);
        let exchange = |tamper: &dyn Fn(String) -> String| {
            let (mut client, first) = TestClient::new(mechanism, "u", "pw", "n0nce");
            let (server, server_first) = ScramServer::start(&lookup, mechanism, &first).unwrap();
            let client_final = String::from_utf8(client.respond(&server_first)).unwrap();
            server.finish(tamper(client_final).as_bytes())
        };
        assert!(exchange(&|m| m).is_ok());
        assert_eq!(exchange(&|m| m.replacen("c=biws", "c=eSws", 1)).unwrap_err(), ScramError::ChannelBindingMismatch);
        assert_eq!(exchange(&|m| m.replacen("r=n0nce", "r=n0ncf", 1)).unwrap_err(), ScramError::NonceMismatch);
        let flip_proof = |m: String| {
            let (head, proof) = m.rsplit_once(",p=").unwrap();
            let mut proof = BASE64.decode(proof).unwrap();
            proof[0] ^= 1;
            format!("{head},p={}", BASE64.encode(proof))
        };
        assert_eq!(exchange(&flip_proof).unwrap_err(), ScramError::InvalidProof);
        // An extension slipped in changes the AuthMessage, so the proof no longer matches.
        let extend = |m: String| m.replacen(",p=", ",x=1,p=", 1);
        assert_eq!(exchange(&extend).unwrap_err(), ScramError::InvalidProof);
    }

    #[test]
    fn gs2_header_rules() {
        let lookup = lookup_from(vec![("u", credentials(ScramMechanism::Sha256, "pw"))]);
        let start = |first: &str| ScramServer::start(&lookup, ScramMechanism::Sha256, first.as_bytes()).map(|_| ());
        assert!(start("n,,n=u,r=abc").is_ok());
        assert!(start("y,,n=u,r=abc").is_ok());
        assert!(start("n,,n=u,r=abc,x=ext").is_ok());
        assert_eq!(start("p=tls-unique,,n=u,r=abc"), Err(ScramError::ChannelBindingNotSupported));
        assert_eq!(start("n,a=admin,n=u,r=abc"), Err(ScramError::AuthorizationIdentityNotSupported));
        assert_eq!(start("n,,m=ext,n=u,r=abc"), Err(ScramError::MandatoryExtension));
        assert_eq!(start("x,,n=u,r=abc"), Err(ScramError::Malformed("the GS2 header must start with n, y or p=")));
        assert_eq!(start("n,,n=a=2Xb,r=abc"), Err(ScramError::Malformed("bad escape in the user name")));
        assert_eq!(start("n,,n=,r=abc"), Err(ScramError::Malformed("the user name is empty")));
        assert_eq!(start("n,,n=u,r="), Err(ScramError::Malformed("the nonce must be printable ASCII without commas")));
        assert_eq!(
            start("n,,n=u,r=a\u{e9}"),
            Err(ScramError::Malformed("the nonce must be printable ASCII without commas"))
        );
    }

    #[test]
    fn y_flag_requires_matching_channel_binding_data() {
        let mechanism = ScramMechanism::Sha512;
        let lookup = lookup_from(vec![("u", credentials(mechanism, "pw"))]);
        let (server, server_first) = ScramServer::start(&lookup, mechanism, b"y,,n=u,r=abc").unwrap();
        let nonce = std::str::from_utf8(&server_first).unwrap().split(',').next().unwrap().to_owned();
        let client_final = format!("c=biws,{nonce},p={}", BASE64.encode([0u8; 64]));
        assert_eq!(server.finish(client_final.as_bytes()).unwrap_err(), ScramError::ChannelBindingMismatch);
    }

    /// Whatever the bytes, start and finish return rather than panic.
    #[test]
    fn malformed_input_never_panics() {
        let lookup = lookup_from(vec![("u", credentials(ScramMechanism::Sha256, "pw"))]);
        let samples: &[&[u8]] = &[
            b"",
            b",",
            b",,",
            b"n",
            b"n,",
            b"n,,",
            b"n,,n",
            b"n,,n=",
            b"n,,n=u",
            b"n,,n=u,",
            b"n,,n=u,r",
            b"n,,n==",
            b"n,,n=u=",
            b"n,,n=u=2",
            b"n,,n=\xc3\xa9=2C",
            b"\xff\xfe",
            b"p=,,",
            b"y,a,",
            b"n,,r=abc,n=u",
            b"n,,n=u,r=abc,,,",
            b"c=biws,r=x,p=",
            b"c=biws,p=abc",
            b",p=",
            b"p=",
            b"c=,r=,p=====",
        ];
        for first in samples {
            let _ = ScramServer::start(&lookup, ScramMechanism::Sha256, first);
        }
        for final_message in samples {
            if let Ok((server, _)) = ScramServer::start(&lookup, ScramMechanism::Sha256, b"n,,n=u,r=abc") {
                let _ = server.finish(final_message);
            }
        }
        // Every prefix of a genuine exchange, too.
        let (mut client, first) = TestClient::new(ScramMechanism::Sha256, "u", "pw", "n0nce");
        let (_, server_first) = ScramServer::start(&lookup, ScramMechanism::Sha256, &first).unwrap();
        let client_final = client.respond(&server_first);
        for end in 0..client_final.len() {
            let (server, _) = ScramServer::start(&lookup, ScramMechanism::Sha256, &first).unwrap();
            assert!(server.finish(&client_final[..end]).is_err());
        }
        for end in 0..first.len() {
            let _ = ScramServer::start(&lookup, ScramMechanism::Sha256, &first[..end]);
        }
    }
}
