//! Set relations between topic filters, over their levels: does one filter cover another
//! (every topic the second matches, the first matches too), and do two filters intersect
//! (some topic matches both).
//!
//! A topic name is a filter without wildcards, so "pattern matches topic" is
//! `covers(pattern, topic)`. The rule that a filter starting with a wildcard matches no topic
//! starting with `$` ([MQTT-4.7.2-1]) is applied throughout.

/// One level of a filter, after any `%c`/`%u` substitution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level<'a> {
    Literal(&'a str),
    /// `+`
    SingleWildcard,
    /// `#`, always the last level.
    MultiWildcard,
}

impl<'a> Level<'a> {
    /// Reads one `/`-separated level of a valid filter or topic name.
    pub(crate) fn parse(level: &'a str) -> Level<'a> {
        match level {
            "+" => Level::SingleWildcard,
            "#" => Level::MultiWildcard,
            literal => Level::Literal(literal),
        }
    }

    fn is_dollar(self) -> bool {
        matches!(self, Level::Literal(literal) if literal.starts_with('$'))
    }

    fn is_wildcard(self) -> bool {
        !matches!(self, Level::Literal(_))
    }
}

/// Whether every topic that `filter` matches is also matched by `pattern`.
pub(crate) fn covers<'p, 'f>(
    pattern: impl IntoIterator<Item = Level<'p>>,
    filter: impl IntoIterator<Item = Level<'f>>,
) -> bool {
    let mut pattern = Normalized::new(pattern);
    let mut filter = Normalized::new(filter);
    let mut first = true;
    loop {
        match (pattern.next(), filter.next()) {
            // `#` matches any number of further levels, including none.
            (Some(Level::MultiWildcard), _) => return true,
            (None, None) => return true,
            // The filter's topics end here or go on (`#` covers both): the pattern needs exactly
            // as many levels, so it cannot match them all.
            (None, Some(_)) | (Some(_), None) => return false,
            // A `#` in the filter includes topics that end at this level, which a single-level
            // pattern does not match.
            (Some(_), Some(Level::MultiWildcard)) => return false,
            (Some(Level::SingleWildcard), Some(level)) => {
                if first && level.is_dollar() {
                    return false;
                }
            }
            (Some(Level::Literal(p)), Some(Level::Literal(f))) if p == f => {}
            (Some(Level::Literal(_)), Some(_)) => return false,
        }
        first = false;
    }
}

/// Whether some topic is matched by both `a` and `b`.
pub(crate) fn intersects<'a, 'b>(
    a: impl IntoIterator<Item = Level<'a>>,
    b: impl IntoIterator<Item = Level<'b>>,
) -> bool {
    let mut a = Normalized::new(a);
    let mut b = Normalized::new(b);
    let mut first = true;
    loop {
        match (a.next(), b.next()) {
            // A `#` (never first after normalizing) meets whatever levels the other can take.
            (Some(Level::MultiWildcard), _) | (_, Some(Level::MultiWildcard)) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) => {
                if first && ((x.is_wildcard() && y.is_dollar()) || (y.is_wildcard() && x.is_dollar())) {
                    return false;
                }
                if let (Level::Literal(x), Level::Literal(y)) = (x, y) {
                    if x != y {
                        return false;
                    }
                }
            }
        }
        first = false;
    }
}

/// Rewrites a leading `#` as `+/#`. A `#` after other levels also matches the topic that ends
/// before it (`a/#` matches `a`), but every topic has at least one level, so a leading `#`
/// matches exactly what `+/#` matches; afterwards every `#` means "zero or more levels".
struct Normalized<'a, I> {
    levels: I,
    first: bool,
    pending_hash: bool,
    _level: std::marker::PhantomData<Level<'a>>,
}

impl<'a, I: Iterator<Item = Level<'a>>> Normalized<'a, I> {
    fn new(levels: impl IntoIterator<IntoIter = I>) -> Self {
        Normalized { levels: levels.into_iter(), first: true, pending_hash: false, _level: std::marker::PhantomData }
    }
}

impl<'a, I: Iterator<Item = Level<'a>>> Iterator for Normalized<'a, I> {
    type Item = Level<'a>;

    fn next(&mut self) -> Option<Level<'a>> {
        if std::mem::take(&mut self.pending_hash) {
            return Some(Level::MultiWildcard);
        }
        let level = self.levels.next()?;
        if std::mem::take(&mut self.first) && level == Level::MultiWildcard {
            self.pending_hash = true;
            return Some(Level::SingleWildcard);
        }
        Some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tern_codec::{TopicFilter, TopicName};

    fn levels(text: &str) -> impl Iterator<Item = Level<'_>> {
        text.split('/').map(Level::parse)
    }

    fn cover(pattern: &str, filter: &str) -> bool {
        covers(levels(pattern), levels(filter))
    }

    fn meet(a: &str, b: &str) -> bool {
        let result = intersects(levels(a), levels(b));
        assert_eq!(result, intersects(levels(b), levels(a)), "intersects is not symmetric for {a} and {b}");
        result
    }

    #[test]
    fn cover_examples() {
        for filter in ["a/b", "a/+", "a/#", "a", "a/b/c", "a/+/#"] {
            assert!(cover("a/#", filter), "a/# should cover {filter}");
        }
        assert!(cover("a/+", "a/b"));
        assert!(cover("a/+", "a/+"));
        assert!(!cover("a/+", "a/#"));
        assert!(!cover("a/+", "a"));
        assert!(!cover("a/+", "a/b/c"));
        assert!(!cover("a/b", "a/+"));
        assert!(!cover("a/b", "a/#"));
        assert!(cover("#", "a/b"));
        assert!(cover("#", "+/#"));
        assert!(cover("+/#", "#"));
        assert!(!cover("+", "#"));
        assert!(!cover("+/+/#", "#"));
        assert!(!cover("a/b/#", "a/#"));
        assert!(cover("+/+", "a/+"));
        assert!(!cover("+/+", "a/+/c"));
        assert!(cover("a//b", "a//b"));
        assert!(!cover("a//b", "a/+/b"));
        assert!(cover("a/+/b", "a//b"));
    }

    #[test]
    fn cover_keeps_dollar_topics_apart() {
        assert!(!cover("#", "$SYS/#"));
        assert!(!cover("#", "$SYS/uptime"));
        assert!(!cover("+/uptime", "$SYS/uptime"));
        assert!(cover("$SYS/#", "$SYS/uptime"));
        assert!(cover("$SYS/+", "$SYS/+"));
        // A filter starting with a wildcard matches no `$` topic, so `#` covers `+/x`.
        assert!(cover("#", "+/x"));
        assert!(!cover("$SYS/#", "+/uptime"));
        // Only the first level counts: `$` further down is an ordinary character.
        assert!(cover("a/+", "a/$b"));
    }

    #[test]
    fn intersect_examples() {
        assert!(meet("a/#", "a/b"));
        assert!(meet("a/#", "#"));
        assert!(meet("a/+", "+/b"));
        assert!(meet("a/#", "a"));
        assert!(meet("+/#", "a"));
        assert!(meet("#", "a"));
        assert!(!meet("a/+", "a"));
        assert!(!meet("a/b", "a/c"));
        assert!(!meet("a/b", "a/b/c"));
        assert!(!meet("a/+/c", "a/b/d"));
        assert!(meet("a/+/c", "+/b/+"));
        assert!(!meet("#", "$SYS/x"));
        assert!(!meet("+/x", "$SYS/x"));
        assert!(meet("$SYS/#", "$SYS/x"));
        assert!(!meet("$SYS/#", "+/x"));
        assert!(meet("#", "+/x"));
    }

    /// Levels drawn from a small alphabet, so that random filters share literals and a
    /// brute-force search over short topics is exhaustive.
    const ALPHABET: [&str; 4] = ["a", "b", "", "$s"];

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop_oneof![
            4 => proptest::sample::select(ALPHABET.to_vec()).prop_map(str::to_owned),
            2 => Just("+".to_owned()),
        ];
        (proptest::collection::vec(level, 0..4), any::<bool>())
            .prop_map(|(mut levels, hash)| {
                if hash {
                    levels.push("#".to_owned());
                }
                levels.join("/")
            })
            .prop_filter("an empty filter is invalid", |filter| !filter.is_empty())
    }

    /// Every topic of up to `max_levels` levels over the alphabet plus a literal no filter
    /// uses: enough to find a topic telling two filters of fewer levels apart, if one exists.
    fn all_topics() -> &'static [TopicName] {
        static TOPICS: std::sync::OnceLock<Vec<TopicName>> = std::sync::OnceLock::new();
        TOPICS.get_or_init(|| topics_up_to(5))
    }

    fn topics_up_to(max_levels: usize) -> Vec<TopicName> {
        let mut topics: Vec<Vec<&str>> = vec![Vec::new()];
        let mut all = Vec::new();
        for _ in 0..max_levels {
            let mut longer = Vec::new();
            for topic in &topics {
                for level in ALPHABET.iter().copied().chain(["z"]) {
                    let mut next = topic.clone();
                    next.push(level);
                    all.push(TopicName::new(&next.join("/")).unwrap());
                    longer.push(next);
                }
            }
            topics = longer;
        }
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn cover_and_intersect_agree_with_brute_force(pattern in filter_strategy(), filter in filter_strategy()) {
            let p = TopicFilter::new(&pattern).unwrap();
            let f = TopicFilter::new(&filter).unwrap();
            let topics = all_topics();
            let covered = topics.iter().filter(|t| f.matches(t)).all(|t| p.matches(t));
            let shared = topics.iter().any(|t| f.matches(t) && p.matches(t));
            prop_assert_eq!(cover(&pattern, &filter), covered, "covers({}, {})", pattern, filter);
            prop_assert_eq!(meet(&pattern, &filter), shared, "intersects({}, {})", pattern, filter);
        }

        #[test]
        fn a_covering_pattern_matches_random_topics_of_the_filter(
            filter in filter_strategy(),
            generalize in proptest::collection::vec(0..4u8, 5),
            extra in proptest::collection::vec("[a-c$]{0,2}", 0..4),
            plus in "[a-c$]{0,2}",
        ) {
            // A pattern made from the filter by widening some levels to `+` or cutting it
            // short with `#`, so that it usually covers the filter.
            let mut pattern = Vec::new();
            for (level, how) in filter.split('/').zip(&generalize) {
                match how {
                    0 => { pattern.push("#"); break; }
                    1 if level != "#" => pattern.push("+"),
                    _ => pattern.push(level),
                }
            }
            let pattern = pattern.join("/");
            if !cover(&pattern, &filter) {
                return Ok(());
            }
            // A topic the filter matches: its literals, `plus` for `+`, `extra` for `#`.
            let mut topic: Vec<String> = Vec::new();
            let mut extra = extra.into_iter();
            for level in filter.split('/') {
                match level {
                    "+" => topic.push(plus.clone()),
                    "#" => topic.extend(extra.by_ref()),
                    literal => topic.push(literal.to_owned()),
                }
            }
            let topic = TopicName::new(&topic.join("/")).unwrap();
            if TopicFilter::new(&filter).unwrap().matches(&topic) {
                prop_assert!(TopicFilter::new(&pattern).unwrap().matches(&topic), "{} covers {} but not {}", pattern, filter, topic);
            }
        }

        #[test]
        fn matching_a_topic_agrees_with_the_codec(pattern in filter_strategy(), topic in "[ab$]{0,2}(/[ab$]{0,2}){0,3}") {
            let name = TopicName::new(&topic).unwrap();
            let expected = TopicFilter::new(&pattern).unwrap().matches(&name);
            prop_assert_eq!(covers(levels(&pattern), name.levels().map(Level::Literal)), expected);
        }
    }
}
