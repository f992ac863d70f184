//! Receiver-side QoS flows and the macro that runs a behaviour for every 3.x protocol level.

use tern_codec::{Publish, QoS};

use crate::packets;
use crate::raw_client::RawClient;

impl RawClient {
    /// Completes the receiver's side of a delivered PUBLISH: PUBACK for QoS 1; PUBREC, the
    /// broker's PUBREL, then PUBCOMP for QoS 2; nothing for QoS 0.
    pub async fn ack(&mut self, publish: &Publish) {
        let Some(id) = publish.packet_id.map(|id| id.get()) else {
            assert_eq!(publish.qos, QoS::AtMostOnce, "QoS 1/2 PUBLISH without a packet id");
            return;
        };
        match publish.qos {
            QoS::AtMostOnce => panic!("QoS 0 PUBLISH with packet id {id}"),
            QoS::AtLeastOnce => self.send(packets::puback(id)).await,
            QoS::ExactlyOnce => {
                self.send(packets::pubrec(id)).await;
                assert_eq!(self.recv().await, packets::pubrel(id));
                self.send(packets::pubcomp(id)).await;
            }
        }
    }

    /// The next packet, which must be a PUBLISH, with its QoS flow completed.
    pub async fn recv_acked(&mut self) -> Publish {
        let publish = self.expect_publish().await;
        self.ack(&publish).await;
        publish
    }
}

/// Generates, for each named `async fn behaviour(version: ProtocolVersion)` in scope, a module
/// `behaviour` with the tests `v31` (MQTT 3.1, level 3) and `v311` (MQTT 3.1.1, level 4), so
/// `cargo test behaviour::v311` runs one of them. The calling crate must depend on
/// `tern-codec` and `tokio`.
#[macro_export]
macro_rules! v3_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v31() {
                    super::$name(::tern_codec::ProtocolVersion::V3_1).await;
                }

                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v311() {
                    super::$name(::tern_codec::ProtocolVersion::V3_1_1).await;
                }
            }
        )*
    };
}
