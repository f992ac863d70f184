//! The subscription index: a trie over topic levels that finds every session with a
//! subscription matching a topic name ([MQTT-4.7]).

use std::collections::HashMap;

use tern_codec::{QoS, SubscriptionOptions, TopicFilter, TopicName};

use crate::client_id::ClientId;

/// Subscriptions of all sessions, keyed by filter level.
///
/// Not synchronised itself: the broker keeps it behind a `RwLock` so that publishers match
/// concurrently under the read lock.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    root: Node,
    len: usize,
}

#[derive(Debug, Default)]
struct Node {
    /// Children by level; the wildcard levels are the children "+" and "#".
    children: HashMap<Box<str>, Node>,
    /// Sessions whose filter ends at this node.
    subscribers: HashMap<ClientId, Subscription>,
}

/// One session's subscription to one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// The 5.0 subscription identifier given with the SUBSCRIBE, if any.
    pub identifier: Option<u32>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty()
    }
}

/// One session's matching subscriptions, merged into one delivery: the highest QoS, every
/// subscription identifier, and retain-as-published if any of them asked for it
/// ([MQTT-3.3.4-2], [MQTT-3.3.4-3]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub client_id: ClientId,
    pub qos: QoS,
    pub subscription_identifiers: Vec<u32>,
    pub retain_as_published: bool,
}

impl SubscriptionIndex {
    /// Adds or replaces `client_id`'s subscription to `filter`. Returns true when it already
    /// existed (and was replaced, [MQTT-3.8.4-3]).
    pub fn insert(&mut self, filter: &TopicFilter, client_id: &ClientId, subscription: Subscription) -> bool {
        let mut node = &mut self.root;
        for level in filter.levels() {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let existed = node.subscribers.insert(client_id.clone(), subscription).is_some();
        if !existed {
            self.len += 1;
        }
        existed
    }

    /// Removes `client_id`'s subscription to `filter`; returns whether there was one.
    pub fn remove(&mut self, filter: &TopicFilter, client_id: &ClientId) -> bool {
        let levels: Vec<&str> = filter.levels().collect();
        let removed = remove_at(&mut self.root, &levels, client_id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Number of (session, filter) subscriptions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every session with a subscription matching `topic`, one entry per session, so the
    /// session gets a single copy ([MQTT-3.3.5-1]). A subscription with the no local option
    /// does not match messages its own session published (`origin`) ([MQTT-3.8.3-3]).
    pub fn matches(&self, topic: &TopicName, origin: Option<&ClientId>) -> Vec<Match> {
        let levels: Vec<&str> = topic.levels().collect();
        let mut found: Vec<(&ClientId, &Subscription)> = Vec::new();
        collect(&self.root, &levels, topic.is_dollar(), true, &mut found);
        found.retain(|(client_id, subscription)| !(subscription.options.no_local && Some(*client_id) == origin));
        merge_overlapping(found)
    }
}

fn remove_at(node: &mut Node, levels: &[&str], client_id: &ClientId) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return node.subscribers.remove(client_id).is_some();
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove_at(child, rest, client_id);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn push_all<'a>(node: &'a Node, found: &mut Vec<(&'a ClientId, &'a Subscription)>) {
    found.extend(node.subscribers.iter());
}

/// Walks the trie along `levels`. At the root of a `$` topic the wildcard children are skipped
/// ([MQTT-4.7.2-1]).
fn collect<'a>(
    node: &'a Node,
    levels: &[&str],
    dollar: bool,
    at_root: bool,
    found: &mut Vec<(&'a ClientId, &'a Subscription)>,
) {
    let wildcards_allowed = !(dollar && at_root);
    let Some((first, rest)) = levels.split_first() else {
        push_all(node, found);
        // "sport/#" also matches "sport" ([MQTT-4.7.1-2] non-normative example).
        if let Some(hash) = node.children.get("#") {
            push_all(hash, found);
        }
        return;
    };
    if let Some(child) = node.children.get(*first) {
        collect(child, rest, dollar, false, found);
    }
    if wildcards_allowed {
        if let Some(plus) = node.children.get("+") {
            collect(plus, rest, dollar, false, found);
        }
        if let Some(hash) = node.children.get("#") {
            push_all(hash, found);
        }
    }
}

fn merge_overlapping(mut found: Vec<(&ClientId, &Subscription)>) -> Vec<Match> {
    if found.len() > 1 {
        found.sort_by(|a, b| a.0.cmp(b.0));
    }
    let mut merged: Vec<Match> = Vec::with_capacity(found.len());
    for (client_id, subscription) in found {
        match merged.last_mut() {
            Some(last) if &last.client_id == client_id => {
                last.qos = last.qos.max(subscription.options.qos);
                last.retain_as_published |= subscription.options.retain_as_published;
                last.subscription_identifiers.extend(subscription.identifier);
            }
            _ => merged.push(Match {
                client_id: client_id.clone(),
                qos: subscription.options.qos,
                subscription_identifiers: subscription.identifier.into_iter().collect(),
                retain_as_published: subscription.options.retain_as_published,
            }),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn qos(q: QoS) -> Subscription {
        Subscription { options: SubscriptionOptions { qos: q, ..Default::default() }, identifier: None }
    }

    fn ids(matches: &[Match]) -> Vec<&str> {
        let mut ids: Vec<&str> = matches.iter().map(|m| m.client_id.as_str()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn matches_agree_with_filter_matching() {
        let filters = ["#", "+", "a", "a/b", "a/+", "a/#", "+/b", "+/+", "/", "/+", "$SYS/#", "+/#", "a/b/c"];
        let topics = ["a", "a/b", "a/b/c", "b", "/", "/x", "$SYS/x", "$SYS", "a/", ""];
        let mut index = SubscriptionIndex::default();
        for (i, f) in filters.iter().enumerate() {
            index.insert(&filter(f), &ClientId::new(&format!("c{i}")), qos(QoS::AtMostOnce));
        }
        for t in topics {
            let expected: Vec<String> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| filter(f).matches(&topic(t)))
                .map(|(i, _)| format!("c{i}"))
                .collect();
            let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
            expected.sort();
            assert_eq!(ids(&index.matches(&topic(t), None)), expected, "topic {t:?}");
        }
    }

    #[test]
    fn overlapping_subscriptions_give_one_match_at_highest_qos() {
        let mut index = SubscriptionIndex::default();
        let c = ClientId::new("c");
        index.insert(&filter("a/#"), &c, qos(QoS::ExactlyOnce));
        index.insert(&filter("a/+"), &c, qos(QoS::AtLeastOnce));
        index.insert(&filter("a/b"), &c, qos(QoS::AtMostOnce));
        let found = index.matches(&topic("a/b"), None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].qos, QoS::ExactlyOnce);
    }

    #[test]
    fn overlapping_subscriptions_carry_every_identifier() {
        // [MQTT-3.3.4-3]
        let mut index = SubscriptionIndex::default();
        let c = ClientId::new("c");
        let with_id = |q, id| Subscription {
            options: SubscriptionOptions { qos: q, ..Default::default() },
            identifier: Some(id),
        };
        index.insert(&filter("a/#"), &c, with_id(QoS::AtMostOnce, 7));
        index.insert(&filter("a/+"), &c, with_id(QoS::AtLeastOnce, 9));
        index.insert(&filter("a/b"), &c, qos(QoS::AtMostOnce));
        let found = index.matches(&topic("a/b"), None);
        assert_eq!(found.len(), 1);
        let mut ids = found[0].subscription_identifiers.clone();
        ids.sort();
        assert_eq!(ids, vec![7, 9]);
        assert_eq!(found[0].qos, QoS::AtLeastOnce);
    }

    #[test]
    fn no_local_skips_the_publishers_own_subscription() {
        // [MQTT-3.8.3-3]
        let mut index = SubscriptionIndex::default();
        let me = ClientId::new("me");
        let other = ClientId::new("other");
        let no_local =
            Subscription { options: SubscriptionOptions { no_local: true, ..Default::default() }, identifier: None };
        index.insert(&filter("t"), &me, no_local);
        index.insert(&filter("t"), &other, no_local);
        assert_eq!(ids(&index.matches(&topic("t"), Some(&me))), vec!["other"]);
        assert_eq!(ids(&index.matches(&topic("t"), None)), vec!["me", "other"]);
    }

    #[test]
    fn resubscribe_replaces_and_remove_prunes() {
        let mut index = SubscriptionIndex::default();
        let c = ClientId::new("c");
        assert!(!index.insert(&filter("a/b"), &c, qos(QoS::AtMostOnce)));
        assert!(index.insert(&filter("a/b"), &c, qos(QoS::ExactlyOnce)));
        assert_eq!(index.len(), 1);
        assert_eq!(index.matches(&topic("a/b"), None)[0].qos, QoS::ExactlyOnce);
        assert!(index.remove(&filter("a/b"), &c));
        assert!(!index.remove(&filter("a/b"), &c));
        assert!(index.is_empty());
        assert!(index.root.is_empty());
    }
}
