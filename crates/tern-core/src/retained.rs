//! Retained messages: a trie over topic levels, so a wildcard SUBSCRIBE visits only the
//! branches its filter can match instead of scanning every retained message.

use std::collections::HashMap;
use std::sync::Arc;

use tern_codec::{TopicFilter, TopicName};

use crate::message::Message;

/// The retained message of every topic that has one ([MQTT-3.3.1-5]).
#[derive(Debug, Default)]
pub struct RetainedIndex {
    root: Node,
    len: usize,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

impl RetainedIndex {
    /// Stores `message` as the retained message of its topic, replacing the previous one
    /// ([MQTT-3.3.1-5]).
    pub fn insert(&mut self, message: Arc<Message>) {
        let mut node = &mut self.root;
        for level in message.topic.levels() {
            node = node.children.entry(Box::from(level)).or_default();
        }
        if node.message.replace(message).is_none() {
            self.len += 1;
        }
    }

    /// Removes the retained message of `topic` ([MQTT-3.3.1-10]); returns whether there was one.
    pub fn remove(&mut self, topic: &TopicName) -> bool {
        let levels: Vec<&str> = topic.levels().collect();
        let removed = remove_at(&mut self.root, &levels);
        if removed {
            self.len -= 1;
        }
        removed
    }

    pub fn get(&self, topic: &TopicName) -> Option<Arc<Message>> {
        let mut node = &self.root;
        for level in topic.levels() {
            node = node.children.get(level)?;
        }
        node.message.clone()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every retained message whose topic matches `filter`, in no particular order.
    pub fn matching(&self, filter: &TopicFilter) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.levels().collect();
        let mut found = Vec::new();
        collect(&self.root, &levels, true, &mut found);
        found
    }
}

fn remove_at(node: &mut Node, levels: &[&str]) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return node.message.take().is_some();
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove_at(child, rest);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn collect_subtree(node: &Node, found: &mut Vec<Arc<Message>>) {
    found.extend(node.message.iter().cloned());
    for child in node.children.values() {
        collect_subtree(child, found);
    }
}

/// Walks the filter's levels through the trie. Wildcards in the first level do not match
/// topics starting with `$` ([MQTT-4.7.2-1]).
fn collect(node: &Node, filter: &[&str], at_root: bool, found: &mut Vec<Arc<Message>>) {
    let Some((first, rest)) = filter.split_first() else {
        found.extend(node.message.iter().cloned());
        return;
    };
    let visible = |level: &str| !(at_root && level.starts_with('$'));
    match *first {
        "#" => {
            // "a/#" matches "a" itself as well as everything below it.
            if !at_root {
                found.extend(node.message.iter().cloned());
            }
            for (level, child) in &node.children {
                if visible(level) {
                    collect_subtree(child, found);
                }
            }
        }
        "+" => {
            for (level, child) in &node.children {
                if visible(level) {
                    collect(child, rest, false, found);
                }
            }
        }
        level => {
            if let Some(child) = node.children.get(level) {
                collect(child, rest, false, found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tern_codec::{Properties, QoS};

    use super::*;

    fn message(topic: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: TopicName::new(topic).unwrap(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Properties::default(),
            expires_at: None,
            origin: None,
        })
    }

    #[test]
    fn matching_agrees_with_filter_matching() {
        let topics = ["a", "a/b", "a/b/c", "b", "/", "/x", "$SYS/x", "$SYS", "a/", "x/y/z"];
        let filters = ["#", "+", "a", "a/b", "a/+", "a/#", "+/b", "+/+", "/", "/+", "$SYS/#", "+/#", "$SYS/+", "+/+/+"];
        let mut index = RetainedIndex::default();
        for t in topics {
            index.insert(message(t));
        }
        assert_eq!(index.len(), topics.len());
        for f in filters {
            let filter = TopicFilter::new(f).unwrap();
            let mut got: Vec<String> = index.matching(&filter).iter().map(|m| m.topic.to_string()).collect();
            got.sort();
            let mut expected: Vec<String> =
                topics.iter().filter(|t| filter.matches(&TopicName::new(t).unwrap())).map(|t| t.to_string()).collect();
            expected.sort();
            assert_eq!(got, expected, "filter {f:?}");
        }
    }

    #[test]
    fn replace_and_remove() {
        let mut index = RetainedIndex::default();
        index.insert(message("a/b"));
        index.insert(message("a/b"));
        assert_eq!(index.len(), 1);
        assert!(index.remove(&TopicName::new("a/b").unwrap()));
        assert!(!index.remove(&TopicName::new("a/b").unwrap()));
        assert!(index.is_empty());
        assert!(index.root.is_empty());
    }
}
