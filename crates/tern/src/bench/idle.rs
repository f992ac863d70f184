//! `conn --hold`: a connection kept open and idle until the run's deadline, answering keep
//! alive with PINGREQ, so that a broker's cost per idle connection can be measured.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use tern_codec::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};

use super::conn::{next_buffered, Conn};
use super::load::Run;

/// Read buffer of an idle connection: a PINGRESP is two bytes.
const IDLE_BUFFER: usize = 256;
/// How long one PINGREQ may take to write.
const PING_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Holds `conn` open until the run's deadline, sending PINGREQ every `keep_alive` (none if
/// zero). Ok if the connection was still up at the deadline; it is closed either way.
pub async fn hold(mut conn: Conn, keep_alive: Duration, run: &Run) -> anyhow::Result<()> {
    // The load buffers (64 KiB each) would make the bench the biggest user of memory.
    conn.read_buf = BytesMut::with_capacity(IDLE_BUFFER);
    conn.write_buf = BytesMut::with_capacity(IDLE_BUFFER);
    let result = hold_loop(&mut conn, keep_alive, run).await;
    let closed = conn.close().await;
    result.and(closed)
}

async fn hold_loop(conn: &mut Conn, keep_alive: Duration, run: &Run) -> anyhow::Result<()> {
    // A PINGREQ a little before each keep alive period is over, as clients do.
    let period = keep_alive.mul_f64(0.75);
    let mut next_ping = (!keep_alive.is_zero()).then(|| Instant::now() + period);
    loop {
        let wake = next_ping.map_or(run.deadline, |ping| ping.min(run.deadline));
        tokio::select! {
            read = conn.stream.read_buf(&mut conn.read_buf) => {
                if read.context("reading from the broker")? == 0 {
                    bail!("connection closed by the broker");
                }
                while let Some(packet) = next_buffered(&mut conn.read_buf, conn.version)? {
                    match packet {
                        Packet::PingResp => {}
                        Packet::Disconnect(disconnect) => {
                            bail!("disconnected by the broker (reason {:#04x})", disconnect.reason_code)
                        }
                        other => bail!("unexpected {} on an idle connection", other.name()),
                    }
                }
            }
            () = sleep_until(wake) => {
                if Instant::now() >= run.deadline {
                    return Ok(());
                }
                conn.queue(&Packet::PingReq)?;
                let write = conn.stream.write_all_buf(&mut conn.write_buf);
                timeout(PING_WRITE_TIMEOUT, write).await.context("PINGREQ not written in time")??;
                next_ping = next_ping.map(|ping| ping + period);
            }
        }
    }
}
