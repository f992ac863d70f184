//! Fuzzes `tern_codec::decode` with arbitrary bytes for every protocol version.
//!
//! The first two input bytes choose how the rest is split into chunks (fed one by one into a
//! buffer, as a socket would deliver them) and the maximum packet size. The target checks that
//! decoding never panics, that the chunked result equals decoding the whole input at once, and
//! that every decoded packet encodes and decodes back to itself.
//!
//! Run with `cargo +nightly fuzz run decode` from this directory.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tern_codec::{
    decode, encode, encoded_len, DecodeError, DecodeOptions, Packet, ProtocolVersion,
};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// The packets decoded in order, then the error that ended decoding or the bytes left over.
#[derive(Debug, PartialEq)]
struct Outcome {
    packets: Vec<Packet>,
    end: Result<Vec<u8>, DecodeError>,
}

fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, options: &DecodeOptions) -> Outcome {
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode(&mut buf, options) {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        packets,
                        end: Err(e),
                    }
                }
            }
        }
    }
    Outcome {
        packets,
        end: Ok(buf.to_vec()),
    }
}

/// Splits `stream` into chunks whose lengths come from a small generator seeded by `seed`.
fn chunks(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        // xorshift32: cheap, deterministic, and good enough to vary the split points.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = (state as usize % 16 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        out.push(chunk);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [seed, size, stream @ ..] = data else {
        return;
    };
    // Mostly unlimited, sometimes small enough to trip the size check.
    let max_packet_size = if *size < 0x40 {
        usize::from(*size)
    } else {
        usize::MAX
    };
    for version in VERSIONS {
        let options = DecodeOptions {
            version,
            max_packet_size,
        };
        let whole = feed([stream], &options);
        assert_eq!(feed(chunks(stream, *seed), &options), whole);
        for packet in &whole.packets {
            let mut buf = BytesMut::new();
            encode(packet, version, &mut buf).expect("a decoded packet encodes");
            assert_eq!(encoded_len(packet, version), Ok(buf.len()));
            let unlimited = DecodeOptions {
                version,
                max_packet_size: usize::MAX,
            };
            assert_eq!(decode(&mut buf, &unlimited), Ok(Some(packet.clone())));
        }
    }
});
