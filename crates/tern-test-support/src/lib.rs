//! Test helpers: [`TestServer`] runs a broker in-process on `127.0.0.1:0`, and [`RawClient`]
//! speaks raw MQTT packets to it, so black-box tests can send exactly the bytes they mean,
//! including malformed ones, over TCP or (with [`secure`]) over TLS and WebSocket. [`HookServer`]
//! is an HTTP auth hook for `[auth.http]`.
//!
//! Every wait here is bounded: a test that expects a packet fails with a message after
//! [`DEFAULT_TIMEOUT`] instead of hanging.

mod flows;
mod hook;
mod packets;
mod raw_bytes;
mod raw_client;
pub mod secure;
mod server;
mod store_conformance;
mod v5;

pub use hook::HookServer;
pub use packets::*;
pub use raw_bytes::*;
pub use raw_client::{RawClient, DEFAULT_TIMEOUT};
pub use server::TestServer;
pub use store_conformance::{block_on, store_conformance, store_persistence_conformance};
pub use v5::*;
