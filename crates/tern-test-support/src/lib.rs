//! Test helpers: [`TestServer`] runs a broker in-process on `127.0.0.1:0`, and [`RawClient`]
//! speaks raw MQTT packets to it, so black-box tests can send exactly the bytes they mean,
//! including malformed ones.
//!
//! Every wait here is bounded: a test that expects a packet fails with a message after
//! [`DEFAULT_TIMEOUT`] instead of hanging.

mod flows;
mod packets;
mod raw_bytes;
mod raw_client;
mod server;
mod store_conformance;
mod v5;

pub use packets::*;
pub use raw_bytes::*;
pub use raw_client::{RawClient, DEFAULT_TIMEOUT};
pub use server::TestServer;
pub use store_conformance::store_conformance;
pub use v5::*;
