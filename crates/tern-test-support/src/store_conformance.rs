//! The conformance suite every storage backend passes, the in-memory reference first.

use bytes::Bytes;
use tern_codec::{Properties, QoS, SubscriptionOptions, TopicFilter, TopicName};
use tern_core::{ClientId, Message, Store, StoredSession, Subscription};

fn message(topic: &str, payload: &'static [u8], qos: QoS) -> Message {
    Message {
        topic: TopicName::new(topic).expect("valid topic"),
        payload: Bytes::from_static(payload),
        qos,
        retain: true,
        properties: Properties::default(),
        expires_at: None,
        origin: None,
    }
}

fn session(id: &str, filters: &[(&str, QoS)]) -> StoredSession {
    StoredSession {
        client_id: ClientId::new(id),
        expiry_interval: 3600,
        subscriptions: filters
            .iter()
            .map(|(f, qos)| {
                let options = SubscriptionOptions { qos: *qos, ..Default::default() };
                (TopicFilter::new(f).expect("valid filter"), Subscription { options, identifier: Some(7) })
            })
            .collect(),
    }
}

/// Runs every conformance check against `store`, which must start empty.
pub fn store_conformance(store: &dyn Store) {
    retained_messages_are_kept_replaced_and_deleted(store);
    sessions_are_kept_replaced_and_deleted(store);
}

fn retained_messages_are_kept_replaced_and_deleted(store: &dyn Store) {
    assert!(store.retained().expect("list retained").is_empty(), "store must start empty");
    store.put_retained(&message("b/1", b"one", QoS::AtLeastOnce)).expect("put");
    store.put_retained(&message("a/1", b"first", QoS::AtMostOnce)).expect("put");
    store.put_retained(&message("a/1", b"second", QoS::ExactlyOnce)).expect("replace");
    let all = store.retained().expect("list retained");
    assert_eq!(all, vec![message("a/1", b"second", QoS::ExactlyOnce), message("b/1", b"one", QoS::AtLeastOnce)]);
    store.delete_retained(&TopicName::new("a/1").expect("topic")).expect("delete");
    store.delete_retained(&TopicName::new("never/stored").expect("topic")).expect("deleting nothing is fine");
    assert_eq!(store.retained().expect("list retained"), vec![message("b/1", b"one", QoS::AtLeastOnce)]);
    store.delete_retained(&TopicName::new("b/1").expect("topic")).expect("delete");
    assert!(store.retained().expect("list retained").is_empty());
}

fn sessions_are_kept_replaced_and_deleted(store: &dyn Store) {
    assert!(store.sessions().expect("list sessions").is_empty(), "store must start empty");
    store.put_session(&session("zeta", &[("z/#", QoS::AtLeastOnce)])).expect("put");
    store.put_session(&session("alpha", &[])).expect("put");
    store.put_session(&session("alpha", &[("a/+", QoS::ExactlyOnce), ("b", QoS::AtMostOnce)])).expect("replace");
    let all = store.sessions().expect("list sessions");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].client_id, ClientId::new("alpha"));
    let mut filters: Vec<(String, QoS)> =
        all[0].subscriptions.iter().map(|(f, s)| (f.to_string(), s.options.qos)).collect();
    filters.sort();
    assert_eq!(filters, vec![("a/+".to_string(), QoS::ExactlyOnce), ("b".to_string(), QoS::AtMostOnce)]);
    assert_eq!(all[1], session("zeta", &[("z/#", QoS::AtLeastOnce)]));
    store.delete_session(&ClientId::new("zeta")).expect("delete");
    store.delete_session(&ClientId::new("nobody")).expect("deleting nothing is fine");
    assert_eq!(store.sessions().expect("list sessions").len(), 1);
    store.delete_session(&ClientId::new("alpha")).expect("delete");
    assert!(store.sessions().expect("list sessions").is_empty());
}
