//! 5.0 subscriptions ([MQTT-3.8], [MQTT-3.10]): subscription options (No Local, Retain As
//! Published, Retain Handling), subscription identifiers, overlapping subscriptions, and the
//! 5.0 reason codes of SUBACK and UNSUBACK.

use std::time::Duration;

use tern_codec::{Properties, QoS, RetainHandling, SubscriptionOptions};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

async fn connected(server: &TestServer, client_id: &str) -> RawClient {
    RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await.0
}

/// Subscribes with one filter and asserts the SUBACK grants `options.qos`.
async fn subscribe_one(
    client: &mut RawClient,
    packet_id: u16,
    filter: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
) {
    let suback = client.subscribe_v5(packet_id, &[(filter, options)], id).await;
    assert_eq!(suback.return_codes, [options.qos as u8], "{filter}: {suback:?}");
}

// [MQTT-3.8.3-3]: with No Local a client does not get its own messages, but does get others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_skips_own_messages_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "nolocal-self").await;
    let no_local = SubscriptionOptions { no_local: true, ..options(QoS::AtLeastOnce) };
    subscribe_one(&mut client, 1, "nolocal/t", no_local, None).await;
    let mut other = connected(&server, "nolocal-other").await;

    client.publish_qos1_v5("nolocal/t", b"own", 1, Properties::default()).await;
    client.expect_nothing(QUIET).await;
    other.publish_qos1_v5("nolocal/t", b"other", 1, Properties::default()).await;
    assert_eq!(client.recv_acked().await.payload.as_ref(), b"other");
}

// [MQTT-3.3.1-12], [MQTT-3.3.1-13]: a retained message published while subscribed arrives with
// retain 1 for a Retain As Published subscription and retain 0 for the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_keeps_retain_flag_on_live_messages_v5() {
    let server = TestServer::start().await;
    let mut rap = connected(&server, "rap-on").await;
    let keep = SubscriptionOptions { retain_as_published: true, ..options(QoS::AtLeastOnce) };
    subscribe_one(&mut rap, 1, "rap/t", keep, None).await;
    let mut plain = connected(&server, "rap-off").await;
    subscribe_one(&mut plain, 1, "rap/t", options(QoS::AtLeastOnce), None).await;
    let mut publisher = connected(&server, "rap-pub").await;

    for (id, retain) in [(1, true), (2, false)] {
        publisher.send(publish_v5("rap/t", b"x", QoS::AtLeastOnce, retain, Some(id), Properties::default())).await;
        assert_eq!(publisher.expect_puback().await.packet_id.get(), id);
        assert_eq!(rap.recv_acked().await.retain, retain, "Retain As Published, published with retain {retain}");
        assert!(!plain.recv_acked().await.retain, "without Retain As Published, published with retain {retain}");
    }
}

/// A broker holding the retained message "kept" on `topic`.
async fn with_retained(server: &TestServer, topic: &str) {
    let mut publisher = connected(server, &format!("{topic}-pub")).await;
    publisher.send(publish_v5(topic, b"kept", QoS::AtLeastOnce, true, Some(1), Properties::default())).await;
    assert_eq!(publisher.expect_puback().await.packet_id.get(), 1);
}

// [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11]: Retain Handling 0 sends retained messages
// on every SUBSCRIBE, 1 only when the subscription is new, 2 never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_controls_retained_messages_on_subscribe_v5() {
    let server = TestServer::start().await;
    with_retained(&server, "rh/t").await;
    for (handling, expected) in [
        (RetainHandling::SendAtSubscribe, [true, true]),
        (RetainHandling::SendIfNew, [true, false]),
        (RetainHandling::DoNotSend, [false, false]),
    ] {
        let mut client = connected(&server, &format!("rh-{}", handling as u8)).await;
        let opts = SubscriptionOptions { retain_handling: handling, ..options(QoS::AtLeastOnce) };
        for (n, sends) in expected.into_iter().enumerate() {
            subscribe_one(&mut client, n as u16 + 1, "rh/t", opts, None).await;
            if sends {
                let publish = client.recv_acked().await;
                assert_eq!((publish.payload.as_ref(), publish.retain), (&b"kept"[..], true), "{handling:?} #{n}");
            } else {
                client.expect_nothing(QUIET).await;
            }
        }
    }
}

// [MQTT-3.3.4-3]: a PUBLISH sent because of a subscription with a Subscription Identifier
// carries it; without one, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_delivered_with_publish_v5() {
    let server = TestServer::start().await;
    let mut with_id = connected(&server, "subid-with").await;
    subscribe_one(&mut with_id, 1, "subid/t", options(QoS::AtLeastOnce), Some(268_435_455)).await;
    let mut without = connected(&server, "subid-without").await;
    subscribe_one(&mut without, 1, "subid/t", options(QoS::AtLeastOnce), None).await;
    let mut publisher = connected(&server, "subid-pub").await;
    publisher.publish_qos1_v5("subid/t", b"x", 1, Properties::default()).await;
    assert_eq!(with_id.recv_acked().await.properties.subscription_identifiers, [268_435_455]);
    assert!(without.recv_acked().await.properties.subscription_identifiers.is_empty());
}

// [MQTT-3.3.4-3]: retained messages sent on SUBSCRIBE carry the identifier too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_on_retained_message_v5() {
    let server = TestServer::start().await;
    with_retained(&server, "subid-ret/t").await;
    let mut client = connected(&server, "subid-ret").await;
    subscribe_one(&mut client, 1, "subid-ret/#", options(QoS::AtLeastOnce), Some(9)).await;
    let publish = client.recv_acked().await;
    assert_eq!((publish.retain, publish.properties.subscription_identifiers), (true, vec![9]));
}

// [MQTT-3.8.4-3], section 3.8.2.1.2: subscribing again to the same filter replaces the
// subscription, its identifier included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_replaces_subscription_identifier_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "subid-replace").await;
    subscribe_one(&mut client, 1, "replace/t", options(QoS::AtLeastOnce), Some(1)).await;
    subscribe_one(&mut client, 2, "replace/t", options(QoS::AtLeastOnce), Some(2)).await;
    let mut publisher = connected(&server, "subid-replace-pub").await;
    publisher.publish_qos1_v5("replace/t", b"x", 1, Properties::default()).await;
    assert_eq!(client.recv_acked().await.properties.subscription_identifiers, [2]);
    client.expect_nothing(QUIET).await;
}

// [MQTT-3.3.4-2], [MQTT-3.3.4-4], [MQTT-3.3.4-5]: overlapping subscriptions of one client give
// one copy, at the highest QoS granted, carrying every matching subscription identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_give_one_copy_with_all_identifiers_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "overlap").await;
    subscribe_one(&mut client, 1, "overlap/+", options(QoS::AtMostOnce), Some(1)).await;
    subscribe_one(&mut client, 2, "overlap/#", options(QoS::AtLeastOnce), Some(2)).await;
    subscribe_one(&mut client, 3, "overlap/a", options(QoS::AtMostOnce), Some(3)).await;
    let mut publisher = connected(&server, "overlap-pub").await;
    publisher.publish_qos1_v5("overlap/a", b"x", 1, Properties::default()).await;
    let publish = client.recv_acked().await;
    assert_eq!(publish.qos, QoS::AtLeastOnce, "copy not at the highest granted QoS");
    let mut ids = publish.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    client.expect_nothing(QUIET).await;
}

// [MQTT-3.8.4-6], section 3.9.3: an invalid filter gets 0x8F (Topic Filter invalid) in its
// SUBACK slot; valid filters in the same SUBSCRIBE are granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filter_gets_suback_0x8f_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "badfilter").await;
    let filters =
        [("ok/#", options(QoS::AtLeastOnce)), ("a/#/b", options(QoS::AtLeastOnce)), ("a+", options(QoS::AtMostOnce))];
    let suback = client.subscribe_v5(1, &filters, None).await;
    assert_eq!(suback.return_codes, [0x01, 0x8F, 0x8F], "{suback:?}");
    client.send(tern_codec::Packet::PingReq).await;
    assert_eq!(client.recv().await, tern_codec::Packet::PingResp);
}

// Section 3.11.3, [MQTT-3.10.4-6]: UNSUBACK says 0x00 for a subscription that existed and 0x11 (No subscription
// existed) for one that did not, one code per filter, the filters taken in order (so a repeated
// filter finds nothing the second time); the removed subscription stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsuback_reports_which_subscriptions_existed_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "unsub").await;
    subscribe_one(&mut client, 1, "unsub/t", options(QoS::AtLeastOnce), None).await;
    client.send(unsubscribe(2, &["unsub/t", "unsub/never", "unsub/t"])).await;
    let unsuback = client.expect_unsuback().await;
    assert_eq!((unsuback.packet_id.get(), unsuback.reason_codes.clone()), (2, vec![0x00, 0x11, 0x11]), "{unsuback:?}");
    let mut publisher = connected(&server, "unsub-pub").await;
    publisher.publish_qos1_v5("unsub/t", b"x", 1, Properties::default()).await;
    client.expect_nothing(QUIET).await;
}
