//! Black-box tests of tern-transport over real loopback sockets.

mod proxy;
mod support;
mod tcp;
mod tls;
mod websocket;
