//! The subscription index: a trie over topic levels that finds every session with a
//! subscription matching a topic name ([MQTT-4.7]).

use std::collections::HashMap;

use tern_codec::{SubscriptionOptions, TopicFilter, TopicName};

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
    subscribers: HashMap<ClientId, SubscriptionOptions>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty()
    }
}

/// One session's matching subscription, after overlapping subscriptions were merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub client_id: ClientId,
    pub options: SubscriptionOptions,
}

impl SubscriptionIndex {
    /// Adds or replaces `client_id`'s subscription to `filter`. Returns true when it already
    /// existed (and was replaced, [MQTT-3.8.4-3]).
    pub fn insert(&mut self, filter: &TopicFilter, client_id: &ClientId, options: SubscriptionOptions) -> bool {
        let mut node = &mut self.root;
        for level in filter.levels() {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let existed = node.subscribers.insert(client_id.clone(), options).is_some();
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

    /// Every session with a subscription matching `topic`, one entry per session: when
    /// several of its subscriptions overlap, the one with the highest QoS wins, so the session
    /// gets a single copy ([MQTT-3.3.5-1]).
    pub fn matches(&self, topic: &TopicName) -> Vec<Match> {
        let levels: Vec<&str> = topic.levels().collect();
        let mut found: Vec<Match> = Vec::new();
        collect(&self.root, &levels, topic.is_dollar(), true, &mut found);
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

fn push_all(node: &Node, found: &mut Vec<Match>) {
    found.extend(
        node.subscribers.iter().map(|(client_id, options)| Match { client_id: client_id.clone(), options: *options }),
    );
}

/// Walks the trie along `levels`. At the root of a `$` topic the wildcard children are skipped
/// ([MQTT-4.7.2-1]).
fn collect(node: &Node, levels: &[&str], dollar: bool, at_root: bool, found: &mut Vec<Match>) {
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

fn merge_overlapping(mut found: Vec<Match>) -> Vec<Match> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by(|a, b| a.client_id.cmp(&b.client_id).then(b.options.qos.cmp(&a.options.qos)));
    found.dedup_by(|later, kept| later.client_id == kept.client_id);
    found
}

#[cfg(test)]
mod tests {
    use tern_codec::QoS;

    use super::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn qos(q: QoS) -> SubscriptionOptions {
        SubscriptionOptions { qos: q, ..Default::default() }
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
            assert_eq!(ids(&index.matches(&topic(t))), expected, "topic {t:?}");
        }
    }

    #[test]
    fn overlapping_subscriptions_give_one_match_at_highest_qos() {
        let mut index = SubscriptionIndex::default();
        let c = ClientId::new("c");
        index.insert(&filter("a/#"), &c, qos(QoS::ExactlyOnce));
        index.insert(&filter("a/+"), &c, qos(QoS::AtLeastOnce));
        index.insert(&filter("a/b"), &c, qos(QoS::AtMostOnce));
        let found = index.matches(&topic("a/b"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].options.qos, QoS::ExactlyOnce);
    }

    #[test]
    fn resubscribe_replaces_and_remove_prunes() {
        let mut index = SubscriptionIndex::default();
        let c = ClientId::new("c");
        assert!(!index.insert(&filter("a/b"), &c, qos(QoS::AtMostOnce)));
        assert!(index.insert(&filter("a/b"), &c, qos(QoS::ExactlyOnce)));
        assert_eq!(index.len(), 1);
        assert_eq!(index.matches(&topic("a/b"))[0].options.qos, QoS::ExactlyOnce);
        assert!(index.remove(&filter("a/b"), &c));
        assert!(!index.remove(&filter("a/b"), &c));
        assert!(index.is_empty());
        assert!(index.root.is_empty());
    }
}
