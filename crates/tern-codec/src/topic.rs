//! Validated topic names and topic filters ([MQTT-4.7]).
//!
//! Both are cheap to clone (`Arc<str>`), because a topic name travels with every copy of a
//! message during fan-out.

use std::fmt;
use std::sync::Arc;

/// The longest UTF-8 string MQTT can carry ([MQTT-1.5.3]).
const MAX_STRING_LEN: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard character")]
    Wildcard,
    #[error("[MQTT-1.5.3-2] topic name contains U+0000")]
    NullCharacter,
    #[error("topic name is longer than 65535 bytes")]
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicFilterError {
    #[error("[MQTT-4.7.3-1] topic filter is empty")]
    Empty,
    #[error("[MQTT-4.7.1-2] multi-level wildcard '#' not alone in the last level")]
    MultiLevelWildcard,
    #[error("[MQTT-4.7.1-3] single-level wildcard '+' does not occupy a whole level")]
    SingleLevelWildcard,
    #[error("[MQTT-1.5.3-2] topic filter contains U+0000")]
    NullCharacter,
    #[error("topic filter is longer than 65535 bytes")]
    TooLong,
    #[error("shared subscription filter is malformed")]
    SharedSubscription,
}

/// A topic name as published: no wildcards, no U+0000. May be empty straight off the wire
/// (5.0 topic alias); [`TopicName::is_empty`] lets the broker enforce [MQTT-4.7.3-1].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    pub fn new(name: &str) -> Result<TopicName, TopicNameError> {
        if name.len() > MAX_STRING_LEN {
            return Err(TopicNameError::TooLong);
        }
        if name.contains('\0') {
            return Err(TopicNameError::NullCharacter);
        }
        if name.contains(['+', '#']) {
            return Err(TopicNameError::Wildcard);
        }
        Ok(TopicName(Arc::from(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True for topics starting with `$`, which filters starting with a wildcard do not match
    /// ([MQTT-4.7.2-1]).
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }

    /// The `/`-separated levels ([MQTT-4.7.1-1]).
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A topic filter with valid wildcards: `#` only alone as the last level, `+` only as a whole
/// level ([MQTT-4.7.1-2], [MQTT-4.7.1-3]). Not empty.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Arc<str>);

impl TopicFilter {
    pub fn new(filter: &str) -> Result<TopicFilter, TopicFilterError> {
        if filter.is_empty() {
            return Err(TopicFilterError::Empty);
        }
        if filter.len() > MAX_STRING_LEN {
            return Err(TopicFilterError::TooLong);
        }
        if filter.contains('\0') {
            return Err(TopicFilterError::NullCharacter);
        }
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            let last = levels.peek().is_none();
            if level.contains('#') && (level != "#" || !last) {
                return Err(TopicFilterError::MultiLevelWildcard);
            }
            if level.contains('+') && level != "+" {
                return Err(TopicFilterError::SingleLevelWildcard);
            }
        }
        Ok(TopicFilter(Arc::from(filter)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated levels.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// True when the filter has a `+` or `#` level.
    pub fn has_wildcard(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Whether `topic` matches this filter ([MQTT-4.7]), including the rule that a filter
    /// starting with a wildcard does not match a `$` topic ([MQTT-4.7.2-1]).
    pub fn matches(&self, topic: &TopicName) -> bool {
        if topic.is_dollar() && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut filter_levels = self.levels();
        let mut topic_levels = topic.levels();
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &str, topic: &str) -> bool {
        TopicFilter::new(filter).unwrap().matches(&TopicName::new(topic).unwrap())
    }

    #[test]
    fn filter_wildcard_rules() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "+/#", "$SYS/#"] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(TopicFilter::new(""), Err(TopicFilterError::Empty));
        assert_eq!(TopicFilter::new("a/#/b"), Err(TopicFilterError::MultiLevelWildcard));
        assert_eq!(TopicFilter::new("a#"), Err(TopicFilterError::MultiLevelWildcard));
        assert_eq!(TopicFilter::new("a/b+"), Err(TopicFilterError::SingleLevelWildcard));
        assert_eq!(TopicFilter::new("+a"), Err(TopicFilterError::SingleLevelWildcard));
        assert_eq!(TopicFilter::new("a\0"), Err(TopicFilterError::NullCharacter));
    }

    #[test]
    fn topic_name_rules() {
        assert!(TopicName::new("a/b").is_ok());
        assert!(TopicName::new("").is_ok());
        assert_eq!(TopicName::new("a/+"), Err(TopicNameError::Wildcard));
        assert_eq!(TopicName::new("a/#"), Err(TopicNameError::Wildcard));
        assert_eq!(TopicName::new("a\0b"), Err(TopicNameError::NullCharacter));
    }

    #[test]
    fn matching_follows_the_spec_examples() {
        // [MQTT-4.7.1.2] examples.
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b/c"));
        assert!(!matches("sport/tennis/#", "sport/tennisx"));
        // [MQTT-4.7.1.3] examples.
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        // [MQTT-4.7.2-1]: wildcards at the start do not match $ topics.
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(matches("$SYS/#", "$SYS/uptime"));
        assert!(matches("$SYS/+", "$SYS/uptime"));
    }
}
