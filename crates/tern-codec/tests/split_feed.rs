//! Bounded randomized robustness test: random bytes and mutated valid encodings are fed to
//! `decode` whole, split in two at every position, byte by byte, and in random chunks, as a
//! socket would deliver them. Decoding must never panic and must give the same packets and
//! errors however the input is split. Every decoded packet must also survive a re-encode.
//!
//! The generator is seeded, so a failure reproduces exactly.

mod strategies;

use bytes::BytesMut;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern_codec::*;

const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// What decoding a stream produced: the packets in order, then either the error that ended
/// decoding or the bytes left waiting for more.
#[derive(Debug, PartialEq)]
struct Outcome {
    packets: Vec<Packet>,
    end: Result<Vec<u8>, DecodeError>,
}

/// Feeds `chunks` one after another into a buffer, decoding all it can after each.
fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, options: &DecodeOptions) -> Outcome {
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode(&mut buf, options) {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => break,
                Err(e) => return Outcome { packets, end: Err(e) },
            }
        }
    }
    Outcome { packets, end: Ok(buf.to_vec()) }
}

/// Checks one input under every version and several ways of splitting it.
fn check(input: &[u8], max_packet_size: usize, rng: &mut StdRng) {
    for version in VERSIONS {
        let options = DecodeOptions { version, max_packet_size };
        let whole = feed([input], &options);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(feed([a, b], &options), whole, "split at {cut} of {input:02x?} ({version:?})");
        }
        assert_eq!(feed(input.chunks(1), &options), whole, "byte by byte: {input:02x?} ({version:?})");
        let mut chunks = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rng.gen_range(1..=rest.len().min(8)));
            chunks.push(chunk);
            rest = tail;
        }
        assert_eq!(feed(chunks, &options), whole, "random chunks: {input:02x?} ({version:?})");
        for packet in &whole.packets {
            reencodes(packet, version);
        }
    }
}

/// A decoded packet is valid, so it must encode and decode back to itself.
fn reencodes(packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).expect("a decoded packet encodes");
    assert_eq!(encoded_len(packet, version), Ok(buf.len()));
    let options = DecodeOptions { version, max_packet_size: usize::MAX };
    assert_eq!(decode(&mut buf, &options).as_ref(), Ok(&Some(packet.clone())));
}

/// A random byte string whose first byte is usually a plausible fixed header, so that more
/// inputs get past it.
fn random_bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(0..48);
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
    if let Some(first) = bytes.first_mut() {
        if rng.gen_bool(0.7) {
            let packet_type = rng.gen_range(1..16u8);
            let flags = match packet_type {
                3 => rng.gen_range(0..16),
                6 | 8 | 10 => 2,
                _ => 0,
            };
            *first = (packet_type << 4) | flags;
        }
    }
    if bytes.len() > 1 && rng.gen_bool(0.7) {
        // A remaining length that fits what follows, or nearly.
        bytes[1] = rng.gen_range(0..(bytes.len() as u8 + 2).min(127));
    }
    bytes
}

/// One to three valid packets of `version`, encoded back to back, then damaged.
fn mutated_encoding(rng: &mut StdRng, runner: &mut TestRunner, version: ProtocolVersion) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    for _ in 0..rng.gen_range(1..=3) {
        let packet = strategies::packet(version).new_tree(runner).expect("strategy").current();
        encode(&packet, version, &mut bytes).expect("valid packets encode");
    }
    let mut bytes = bytes.to_vec();
    for _ in 0..rng.gen_range(0..=3) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..5) {
            0 => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => bytes[at] = rng.gen(),
            2 => bytes.truncate(at),
            3 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, rng.gen()),
        }
    }
    bytes
}

/// A size limit that is usually generous but sometimes cuts into the input.
fn max_packet_size(rng: &mut StdRng) -> usize {
    if rng.gen_bool(0.8) {
        usize::MAX
    } else {
        rng.gen_range(0..64)
    }
}

#[test]
fn random_bytes_decode_the_same_however_they_are_split() {
    let mut rng = StdRng::seed_from_u64(0x7E57_0001);
    for _ in 0..2_000 {
        let input = random_bytes(&mut rng);
        let max = max_packet_size(&mut rng);
        check(&input, max, &mut rng);
    }
}

#[test]
fn mutated_encodings_decode_the_same_however_they_are_split() {
    let mut rng = StdRng::seed_from_u64(0x7E57_0002);
    let mut runner = TestRunner::deterministic();
    for i in 0..1_500 {
        let version = VERSIONS[i % VERSIONS.len()];
        let input = mutated_encoding(&mut rng, &mut runner, version);
        let max = max_packet_size(&mut rng);
        check(&input, max, &mut rng);
    }
}
