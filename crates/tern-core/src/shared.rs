//! Shared subscriptions (`$share/{group}/{filter}`, [MQTT-4.8.2]): each message matching a
//! group's filter goes to one member of the group, chosen by the configured [`Strategy`].
//!
//! Groups are kept in a map and matched one by one; member selection state is atomic so
//! publishers choose members under the broker's read lock.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use tern_codec::{TopicFilter, TopicName};

use crate::client_id::ClientId;
use crate::subscriptions::Subscription;

const SHARE_PREFIX: &str = "$share/";

/// How a group picks the member for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Members in turn.
    #[default]
    RoundRobin,
    Random,
    /// The same publisher's messages go to the same member.
    HashClientId,
    /// Messages on the same topic go to the same member.
    HashTopic,
    /// One member gets everything while it stays connected.
    Sticky,
}

impl Strategy {
    pub fn parse(name: &str) -> Option<Strategy> {
        Some(match name {
            "round_robin" => Strategy::RoundRobin,
            "random" => Strategy::Random,
            "hash_client_id" => Strategy::HashClientId,
            "hash_topic" => Strategy::HashTopic,
            "sticky" => Strategy::Sticky,
            _ => return None,
        })
    }
}

/// A shared subscription filter split into its group and the filter it shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFilter {
    /// The whole `$share/{group}/{filter}`: the key of the group.
    pub key: GroupKey,
    pub filter: TopicFilter,
}

/// Identifies one group: its whole `$share/...` filter.
pub type GroupKey = TopicFilter;

impl SharedFilter {
    /// `Some` for a well-formed shared subscription, `None` for an ordinary filter.
    pub fn parse(filter: &TopicFilter) -> Option<SharedFilter> {
        let rest = filter.as_str().strip_prefix(SHARE_PREFIX)?;
        let (group, inner) = rest.split_once('/')?;
        if group.is_empty() || group.contains(['+', '#']) {
            return None;
        }
        let inner = TopicFilter::new(inner).ok()?;
        Some(SharedFilter { key: filter.clone(), filter: inner })
    }

    /// Whether `filter` claims to be shared (starts with `$share/`), valid or not.
    pub fn is_shared(filter: &str) -> bool {
        filter.starts_with(SHARE_PREFIX) || filter == "$share"
    }
}

/// A session in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub client_id: ClientId,
    pub subscription: Subscription,
}

#[derive(Debug)]
struct Group {
    filter: TopicFilter,
    members: Vec<Member>,
    /// Round robin position, or the sticky member's index.
    cursor: AtomicUsize,
}

#[derive(Debug, Default)]
pub struct SharedSubscriptions {
    groups: HashMap<GroupKey, Group>,
    strategy: Strategy,
    len: usize,
}

fn hash_of(value: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish() as usize
}

impl SharedSubscriptions {
    pub fn set_strategy(&mut self, strategy: Strategy) {
        self.strategy = strategy;
    }

    /// Adds or replaces a member; returns true if the client was already a member.
    pub fn insert(&mut self, shared: &SharedFilter, client_id: &ClientId, subscription: Subscription) -> bool {
        let group = self.groups.entry(shared.key.clone()).or_insert_with(|| Group {
            filter: shared.filter.clone(),
            members: Vec::new(),
            cursor: AtomicUsize::new(0),
        });
        if let Some(member) = group.members.iter_mut().find(|m| &m.client_id == client_id) {
            member.subscription = subscription;
            return true;
        }
        group.members.push(Member { client_id: client_id.clone(), subscription });
        self.len += 1;
        false
    }

    pub fn remove(&mut self, shared: &SharedFilter, client_id: &ClientId) -> bool {
        let Some(group) = self.groups.get_mut(&shared.key) else { return false };
        let before = group.members.len();
        group.members.retain(|m| &m.client_id != client_id);
        let removed = group.members.len() < before;
        if group.members.is_empty() {
            self.groups.remove(&shared.key);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One member of every group whose filter matches `topic`.
    pub fn pick(
        &self,
        topic: &TopicName,
        origin: Option<&ClientId>,
        online: &dyn Fn(&ClientId) -> bool,
    ) -> Vec<(GroupKey, Member)> {
        self.groups
            .iter()
            .filter(|(_, group)| group.filter.matches(topic))
            .filter_map(|(key, group)| self.choose(group, topic, origin, online).map(|m| (key.clone(), m)))
            .collect()
    }

    /// One member of the group `key` for which `online` holds, if there is one.
    pub fn pick_in_group(
        &self,
        key: &GroupKey,
        topic: &TopicName,
        online: &dyn Fn(&ClientId) -> bool,
    ) -> Option<Member> {
        let group = self.groups.get(key)?;
        let member = self.choose(group, topic, None, online)?;
        online(&member.client_id).then_some(member)
    }

    /// The strategy's first choice, moved on to the next connected member when it is
    /// offline; an offline member is chosen only when none is connected (its session queues
    /// the message).
    fn choose(
        &self,
        group: &Group,
        topic: &TopicName,
        origin: Option<&ClientId>,
        online: &dyn Fn(&ClientId) -> bool,
    ) -> Option<Member> {
        let n = group.members.len();
        if n == 0 {
            return None;
        }
        let start = match self.strategy {
            Strategy::RoundRobin => group.cursor.fetch_add(1, Ordering::Relaxed),
            Strategy::Random => rand::thread_rng().gen_range(0..n),
            Strategy::HashClientId => origin.map_or(0, |id| hash_of(id.as_str())),
            Strategy::HashTopic => hash_of(topic.as_str()),
            Strategy::Sticky => group.cursor.load(Ordering::Relaxed),
        } % n;
        let chosen = (0..n).map(|offset| (start + offset) % n).find(|&i| online(&group.members[i].client_id));
        if self.strategy == Strategy::Sticky {
            if let Some(index) = chosen {
                group.cursor.store(index, Ordering::Relaxed);
            }
        }
        Some(group.members[chosen.unwrap_or(start)].clone())
    }
}

#[cfg(test)]
mod tests {
    use tern_codec::{QoS, SubscriptionOptions};

    use super::*;

    fn shared(filter: &str) -> SharedFilter {
        SharedFilter::parse(&TopicFilter::new(filter).unwrap()).unwrap()
    }

    fn sub() -> Subscription {
        Subscription { options: SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() }, identifier: None }
    }

    fn topic(name: &str) -> TopicName {
        TopicName::new(name).unwrap()
    }

    #[test]
    fn parses_well_formed_shared_filters_only() {
        let parsed = shared("$share/g/a/+");
        assert_eq!(parsed.filter.as_str(), "a/+");
        for bad in ["$share/g", "$share//a", "$share/g/"] {
            let filter = TopicFilter::new(bad).unwrap();
            assert!(SharedFilter::parse(&filter).is_none(), "{bad}");
            assert!(SharedFilter::is_shared(bad));
        }
        assert!(SharedFilter::parse(&TopicFilter::new("a/b").unwrap()).is_none());
    }

    #[test]
    fn round_robin_spreads_evenly_and_skips_offline_members() {
        let mut groups = SharedSubscriptions::default();
        let f = shared("$share/g/t/#");
        for id in ["a", "b"] {
            groups.insert(&f, &ClientId::new(id), sub());
        }
        let all_online = |_: &ClientId| true;
        let mut counts = HashMap::new();
        for _ in 0..10 {
            let picked = groups.pick(&topic("t/x"), None, &all_online);
            assert_eq!(picked.len(), 1);
            *counts.entry(picked[0].1.client_id.to_string()).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), Some(&5));
        assert_eq!(counts.get("b"), Some(&5));
        let only_b = |id: &ClientId| id.as_str() == "b";
        for _ in 0..4 {
            assert_eq!(groups.pick(&topic("t/x"), None, &only_b)[0].1.client_id.as_str(), "b");
        }
        assert!(groups.pick(&topic("other"), None, &all_online).is_empty());
    }

    #[test]
    fn hash_and_sticky_strategies_are_stable() {
        for strategy in [Strategy::HashTopic, Strategy::HashClientId, Strategy::Sticky] {
            let mut groups = SharedSubscriptions::default();
            groups.set_strategy(strategy);
            let f = shared("$share/g/t/#");
            for id in ["a", "b", "c"] {
                groups.insert(&f, &ClientId::new(id), sub());
            }
            let origin = ClientId::new("publisher");
            let online = |_: &ClientId| true;
            let first = groups.pick(&topic("t/1"), Some(&origin), &online)[0].1.client_id.clone();
            for _ in 0..5 {
                assert_eq!(groups.pick(&topic("t/1"), Some(&origin), &online)[0].1.client_id, first, "{strategy:?}");
            }
        }
    }

    #[test]
    fn remove_drops_empty_groups() {
        let mut groups = SharedSubscriptions::default();
        let f = shared("$share/g/t");
        assert!(!groups.insert(&f, &ClientId::new("a"), sub()));
        assert!(groups.insert(&f, &ClientId::new("a"), sub()));
        assert_eq!(groups.len(), 1);
        assert!(groups.remove(&f, &ClientId::new("a")));
        assert!(groups.is_empty());
        assert!(groups.groups.is_empty());
    }
}
