//! The reason codes each packet may carry ([MQTT-2.4], and each packet's reason code table).
//!
//! A sender "MUST use one of" its packet's codes (e.g. [MQTT-3.4.2-1]), so any other value is
//! refused as [`DecodeError::InvalidReasonCode`].

use crate::error::DecodeError;
use crate::packet::ProtocolVersion;

/// 3.1.1 CONNACK return codes ([MQTT-3.2.2.3]); 6..=255 are reserved.
const CONNACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x03, 0x04, 0x05];

/// 5.0 CONNACK reason codes ([MQTT-3.2.2.2]).
const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];

/// PUBACK ([MQTT-3.4.2.1]) and PUBREC ([MQTT-3.5.2.1]) reason codes.
pub(crate) const PUBACK: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];

/// PUBREL ([MQTT-3.6.2.1]) and PUBCOMP ([MQTT-3.7.2.1]) reason codes.
pub(crate) const PUBREL: &[u8] = &[0x00, 0x92];

/// 3.1.1 SUBACK return codes ([MQTT-3.9.3]): granted QoS 0..=2 or failure.
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];

/// 5.0 SUBACK reason codes ([MQTT-3.9.3]).
const SUBACK_V5: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];

/// 5.0 UNSUBACK reason codes ([MQTT-3.11.3]).
pub(crate) const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

/// 5.0 DISCONNECT reason codes ([MQTT-3.14.2.1]).
pub(crate) const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

/// AUTH reason codes ([MQTT-3.15.2.1]).
pub(crate) const AUTH: &[u8] = &[0x00, 0x18, 0x19];

pub(crate) fn connack(version: ProtocolVersion) -> &'static [u8] {
    if version == ProtocolVersion::V5 {
        CONNACK_V5
    } else {
        CONNACK_V3
    }
}

pub(crate) fn suback(version: ProtocolVersion) -> &'static [u8] {
    if version == ProtocolVersion::V5 {
        SUBACK_V5
    } else {
        SUBACK_V3
    }
}

/// Returns `code` if it is one of `allowed`.
pub(crate) fn check(code: u8, allowed: &[u8]) -> Result<u8, DecodeError> {
    if allowed.contains(&code) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode(code))
    }
}
