//! Round trip: every valid packet decodes back to itself after encoding, for each version, and
//! `encoded_len` matches what `encode` wrote.

mod strategies;

use bytes::BytesMut;
use proptest::prelude::*;
use tern_codec::*;

fn round_trip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(encoded_len(packet, version), Ok(buf.len()));
    let options = DecodeOptions { version, max_packet_size: buf.len() };
    let decoded = decode(&mut buf, &options);
    prop_assert_eq!(decoded, Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(())
}

proptest! {
    #[test]
    fn round_trip_v3_1_1(packet in strategies::packet(ProtocolVersion::V3_1_1)) {
        round_trip(&packet, ProtocolVersion::V3_1_1)?;
    }

    #[test]
    fn round_trip_v5(packet in strategies::packet(ProtocolVersion::V5)) {
        round_trip(&packet, ProtocolVersion::V5)?;
    }

    #[test]
    fn round_trip_v3_1(packet in strategies::packet(ProtocolVersion::V3_1)) {
        round_trip(&packet, ProtocolVersion::V3_1)?;
    }

    #[test]
    fn round_trip_v3_1_connect(packet in strategies::connect(ProtocolVersion::V3_1)) {
        // CONNECT carries its own level, whatever the connection assumed.
        round_trip(&packet, ProtocolVersion::V3_1_1)?;
    }
}
