//! TLS 1.2 and 1.3, mutual TLS (required and optional) and the client certificate's identity.

use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use rustls::ProtocolVersion;
use tern_transport::{CertificateIdentity, ClientAuth, TlsSettings, Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{client_config, pem, serve_once, tls_connect, within, Pki, Scratch, HANDSHAKE_TIMEOUT};

async fn exchange_over_tls(version: &'static rustls::SupportedProtocolVersion, expected: ProtocolVersion) {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, false, false)).expect("TLS settings");
    assert_eq!(tls.client_auth(), ClientAuth::None);
    let (addr, server) = serve_once(Transport::Tls(tls), false, HANDSHAKE_TIMEOUT).await;

    let mut client = tls_connect(client_config(&pki, version, None), addr).await.expect("TLS connect");
    assert_eq!(client.get_ref().1.protocol_version(), Some(expected));
    let (mut stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(peer.addr, client.get_ref().0.local_addr().expect("client address"));
    assert_eq!(peer.certificate, None);

    client.write_all(b"\x10\x0cCONNECT").await.expect("client write");
    client.flush().await.expect("client flush");
    let mut received = [0; 9];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(&received, b"\x10\x0cCONNECT");
    stream.write_all(b"\x20\x02\x00\x00").await.expect("server write");
    stream.flush().await.expect("server flush");
    let mut received = [0; 4];
    within(client.read_exact(&mut received)).await.expect("client read");
    assert_eq!(&received, b"\x20\x02\x00\x00");
}

#[tokio::test]
async fn tls12_handshake_and_data() {
    exchange_over_tls(&TLS12, ProtocolVersion::TLSv1_2).await;
}

#[tokio::test]
async fn tls13_handshake_and_data() {
    exchange_over_tls(&TLS13, ProtocolVersion::TLSv1_3).await;
}

#[tokio::test]
async fn required_client_certificate_refuses_a_client_without_one() {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, true, true)).expect("TLS settings");
    assert_eq!(tls.client_auth(), ClientAuth::Required);
    let (addr, server) = serve_once(Transport::Tls(tls), false, HANDSHAKE_TIMEOUT).await;

    // With TLS 1.3 the client finishes its side before the server has judged its (absent)
    // certificate, so only the server's result is certain.
    let _client = tls_connect(client_config(&pki, &TLS13, None), addr).await;
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::Tls(_))), "{:?}", result.map(|(_, peer)| peer));
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused_even_when_optional() {
    let pki = Pki::new("Tern test CA");
    let stranger = Pki::new("Another CA").client("mallory", &[]);
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, true, false)).expect("TLS settings");
    let (addr, server) = serve_once(Transport::Tls(tls), false, HANDSHAKE_TIMEOUT).await;

    let _client = tls_connect(client_config(&pki, &TLS12, Some(&stranger)), addr).await;
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::Tls(_))), "{:?}", result.map(|(_, peer)| peer));
}

async fn identity_over(version: &'static rustls::SupportedProtocolVersion, require: bool) {
    let pki = Pki::new("Tern test CA");
    let client_identity =
        pki.client("sensor-17", &["sensor-17.example.com", "ops@example.com", "urn:tern:device:sensor-17"]);
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, true, require)).expect("TLS settings");
    let (addr, server) = serve_once(Transport::Tls(tls), false, HANDSHAKE_TIMEOUT).await;

    let mut client = tls_connect(client_config(&pki, version, Some(&client_identity)), addr).await.expect("connect");
    let (mut stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(
        peer.certificate,
        Some(CertificateIdentity {
            common_name: Some("sensor-17".to_owned()),
            subject_alt_names: vec![
                "sensor-17.example.com".to_owned(),
                "ops@example.com".to_owned(),
                "urn:tern:device:sensor-17".to_owned(),
            ],
        })
    );
    client.write_all(b"ping").await.expect("client write");
    client.flush().await.expect("client flush");
    let mut received = [0; 4];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(&received, b"ping");
}

#[tokio::test]
async fn required_client_certificate_gives_its_identity_tls13() {
    identity_over(&TLS13, true).await;
}

#[tokio::test]
async fn required_client_certificate_gives_its_identity_tls12() {
    identity_over(&TLS12, true).await;
}

#[tokio::test]
async fn optional_client_certificate_gives_its_identity() {
    identity_over(&TLS13, false).await;
}

#[tokio::test]
async fn optional_client_certificate_admits_a_client_without_one() {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, true, false)).expect("TLS settings");
    assert_eq!(tls.client_auth(), ClientAuth::Optional);
    let (addr, server) = serve_once(Transport::Tls(tls), false, HANDSHAKE_TIMEOUT).await;

    let _client = tls_connect(client_config(&pki, &TLS13, None), addr).await.expect("connect");
    let (_stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(peer.certificate, None);
}

#[tokio::test]
async fn silent_client_times_out_in_the_tls_handshake() {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, false, false)).expect("TLS settings");
    let (addr, server) = serve_once(Transport::Tls(tls), false, Duration::from_millis(200)).await;
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::Timeout)), "{:?}", result.map(|(_, peer)| peer));
}

/// The SEC1 `ECPrivateKey` inside a PKCS#8 `PrivateKeyInfo`: the content of its OCTET STRING.
fn pkcs8_to_sec1(pkcs8: &[u8]) -> Vec<u8> {
    fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            (der[2..2 + n].iter().fold(0, |len, byte| len << 8 | usize::from(*byte)), 2 + n)
        };
        (tag, &der[header..header + len], &der[header + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8 private key is an OCTET STRING");
    key.to_vec()
}

#[tokio::test]
async fn sec1_ec_private_key_loads() {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let mut settings = scratch.tls_settings(&pki, false, false);
    settings.private_key =
        scratch.write("server-sec1.key", &pem("EC PRIVATE KEY", &pkcs8_to_sec1(&pki.server.key_pkcs8)));
    let tls = Transport::tls(&settings).expect("SEC1 key");
    let (addr, server) = serve_once(Transport::Tls(tls), false, HANDSHAKE_TIMEOUT).await;
    let _client = tls_connect(client_config(&pki, &TLS13, None), addr).await.expect("connect");
    within(server).await.expect("server task").expect("handshake");
}

#[test]
fn load_errors_name_the_file() {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let good = scratch.tls_settings(&pki, true, true);

    let missing = scratch.dir.join("missing.pem");
    let error = Transport::tls(&TlsSettings { cert_chain: missing.clone(), ..good.clone() }).expect_err("missing");
    assert!(matches!(&error, TransportError::Load { path, .. } if *path == missing.display().to_string()), "{error}");
    assert!(error.to_string().contains("missing.pem"), "{error}");

    let no_key = scratch.write("no-key.pem", &pem("CERTIFICATE", &pki.ca_der()));
    let error = Transport::tls(&TlsSettings { private_key: no_key, ..good.clone() }).expect_err("no key");
    assert!(matches!(&error, TransportError::Load { what: "private key", .. }), "{error}");
    assert!(error.to_string().contains("no-key.pem"), "{error}");

    let garbage = scratch.write("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    let error = Transport::tls(&TlsSettings { client_ca: Some(garbage), ..good.clone() }).expect_err("bad CA");
    assert!(error.to_string().contains("garbage.pem"), "{error}");

    let empty = scratch.write("empty.pem", "");
    let error = Transport::tls(&TlsSettings { cert_chain: empty, ..good.clone() }).expect_err("empty chain");
    assert!(error.to_string().contains("empty.pem"), "{error}");

    let other_key = Pki::new("Another CA").server.key_pkcs8;
    let mismatched = scratch.write("other.key", &pem("PRIVATE KEY", &other_key));
    let error = Transport::tls(&TlsSettings { private_key: mismatched, ..good.clone() }).expect_err("key mismatch");
    assert!(error.to_string().contains("other.key"), "{error}");

    let error = Transport::tls(&TlsSettings { client_ca: None, ..good }).expect_err("required without CA");
    assert!(matches!(error, TransportError::Settings(_)), "{error}");
}
