//! ACL files in mosquitto's `acl_file` format, as an [`Authorizer`].
//!
//! mosquitto.conf(5), `acl_file`:
//!
//! > If this parameter is defined then only the topics listed will have access. Topic access
//! > is added with lines of the format: `topic [read|write|readwrite|deny] <topic>`. The
//! > access type is controlled using "read", "write", "readwrite" or "deny". This parameter is
//! > optional (unless `<topic>` includes a space character) - if not given then the access is
//! > read/write. `<topic>` can contain the + or # wildcards as in subscriptions. The "deny"
//! > option can used to explicitly deny access to a topic that would otherwise be granted by
//! > a broader read/write/readwrite statement. Any "deny" topics are handled before topics
//! > that grant read/write access.
//! >
//! > The first set of topics are applied to anonymous clients, assuming allow_anonymous is
//! > true. User specific topic ACLs are added after a user line as follows: `user <username>`.
//! > The username referred to here is the same as in password_file. It is not the clientid.
//! >
//! > It is also possible to define ACLs based on pattern substitution within the topic. The
//! > form is the same as for the topic keyword, but using pattern as the keyword.
//! > `pattern [read|write|readwrite|deny] <topic>`. The patterns available for substition
//! > are: %c to match the client id of the client; %u to match the username of the client.
//! > The substitution pattern must be the only text for that level of hierarchy. Pattern ACLs
//! > apply to all users even if the "user" keyword has previously been given.
//! >
//! > If the first character of a line of the ACL file is a # it is treated as a comment.
//!
//! So `topic` lines before the first `user` line apply to anonymous clients only (no user
//! name), `topic` lines after `user NAME` to that user only, and `pattern` lines to everyone.
//!
//! Beyond mosquitto, a `pattern` level may be `%a`, the client's real IP address (after a
//! PROXY protocol header), or `%{name}`: the value of an attribute the
//! authenticator vouched for, such as a JWT claim (`pattern readwrite tenants/%{tenant}/#`).
//! A client without that attribute gets nothing from the rule.
//!
//! Where Tern is stricter than mosquitto, it says so with an error naming the file and line
//! instead of ignoring the line: an unknown keyword, `user` without a name, an access word
//! without a topic, an invalid topic filter, or `%c`/`%u` sharing a level with other text.
//! A client id or user name that is empty or contains `/`, `+` or `#` cannot stand for one
//! level, so a `pattern` that needs it grants nothing and a `deny` pattern that needs it
//! denies everything (mosquitto denies all pattern checks to ids with `+` or `#`).
//!
//! Subscriptions are decided on the filter as a whole: a filter is allowed when a single
//! `read`/`readwrite` rule covers it (every topic it can match, the rule matches) and no
//! `deny` rule can match any topic it can match.

mod levels;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use tern_codec::{TopicFilter, TopicName};
use tern_core::{Authorizer, ClientInfo};

use crate::error::{AuthError, LineError};
use levels::{covers, intersects, Level};

/// A loaded ACL file. Without one the broker uses [`tern_core::AllowAll`].
#[derive(Debug, Default, Clone)]
pub struct AclFile {
    /// `topic` lines before the first `user` line.
    anonymous: Vec<Rule>,
    /// `topic` lines after `user NAME`, by name.
    users: HashMap<String, Vec<Rule>>,
    /// `pattern` lines, wherever they are.
    patterns: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn grants(self, wanted: Wanted) -> bool {
        matches!((self, wanted), (Access::ReadWrite, _) | (Access::Read, Wanted::Read) | (Access::Write, Wanted::Write))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    levels: Vec<RuleLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleLevel {
    Literal(Box<str>),
    SingleWildcard,
    MultiWildcard,
    /// `%c` in a `pattern` line.
    ClientId,
    /// `%u` in a `pattern` line.
    Username,
    /// `%a` in a `pattern` line: the client's real IP address (after a PROXY header).
    Address,
    /// `%{name}` in a `pattern` line: the value of an attribute the authenticator vouched for
    /// (a JWT claim, an HTTP hook attribute). A client without it gets nothing from the rule.
    Attribute(Box<str>),
}

/// What `%c` or `%u` stands for, for one client.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Usable(&'a str),
    /// No user name: patterns with `%u` do not apply to the client at all.
    Missing,
    /// Would not be exactly one level.
    Unsafe,
}

impl<'a> Value<'a> {
    fn of(value: Option<&'a str>) -> Value<'a> {
        match value {
            None => Value::Missing,
            Some(value) if value.is_empty() || value.contains(['/', '+', '#']) => Value::Unsafe,
            Some(value) => Value::Usable(value),
        }
    }
}

/// How a rule stands for one client once `%c` and `%u` are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Yes,
    No,
    /// A substitution is unsafe: an allowing rule does not apply, a `deny` rule applies to all.
    Unsafe,
}

struct Client<'a> {
    client_id: Value<'a>,
    username: Value<'a>,
    address: Value<'a>,
    attributes: &'a [(String, String)],
}

impl<'a> Client<'a> {
    fn attribute(&self, name: &str) -> Value<'a> {
        Value::of(self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()))
    }
}

impl Rule {
    fn applies(&self, client: &Client<'_>) -> Applies {
        let mut applies = Applies::Yes;
        for level in &self.levels {
            let value = match level {
                RuleLevel::ClientId => client.client_id,
                RuleLevel::Username => client.username,
                RuleLevel::Address => client.address,
                RuleLevel::Attribute(name) => client.attribute(name),
                _ => continue,
            };
            match value {
                Value::Unsafe => return Applies::Unsafe,
                Value::Missing => applies = Applies::No,
                Value::Usable(_) => {}
            }
        }
        applies
    }

    /// The rule's levels with `%c` and `%u` filled in; only called when it applies.
    fn levels<'a>(&'a self, client: &'a Client<'a>) -> impl Iterator<Item = Level<'a>> + 'a {
        let text = |value: Value<'a>| match value {
            Value::Usable(text) => text,
            Value::Missing | Value::Unsafe => unreachable!("rule levels asked for a rule that does not apply"),
        };
        self.levels.iter().map(move |level| match level {
            RuleLevel::Literal(literal) => Level::Literal(literal),
            RuleLevel::SingleWildcard => Level::SingleWildcard,
            RuleLevel::MultiWildcard => Level::MultiWildcard,
            RuleLevel::ClientId => Level::Literal(text(client.client_id)),
            RuleLevel::Username => Level::Literal(text(client.username)),
            RuleLevel::Address => Level::Literal(text(client.address)),
            RuleLevel::Attribute(name) => Level::Literal(text(client.attribute(name))),
        })
    }
}

impl AclFile {
    /// Reads and parses the file at `path`. Errors name the file and, for a bad line, its
    /// number.
    pub fn load(path: impl AsRef<Path>) -> Result<AclFile, AuthError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| AuthError::Io { path: path.to_owned(), source })?;
        AclFile::parse(&text).map_err(|(line, error)| AuthError::Line { path: path.to_owned(), line, error })
    }

    /// Parses the text of an ACL file; an error carries the line number, from 1.
    fn parse(text: &str) -> Result<AclFile, (usize, LineError)> {
        let mut acl = AclFile::default();
        let mut user: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let rest = rest.trim_start();
            match keyword {
                "user" if rest.is_empty() => return Err((index + 1, LineError::MissingUsername)),
                "user" => user = Some(rest.to_owned()),
                "topic" => {
                    let rule = parse_rule("topic", rest, false).map_err(|error| (index + 1, error))?;
                    match &user {
                        Some(user) => acl.users.entry(user.clone()).or_default().push(rule),
                        None => acl.anonymous.push(rule),
                    }
                }
                "pattern" => acl.patterns.push(parse_rule("pattern", rest, true).map_err(|error| (index + 1, error))?),
                other => return Err((index + 1, LineError::UnknownKeyword(other.to_owned()))),
            }
        }
        Ok(acl)
    }

    /// The rules for `client`: its user's (or the anonymous ones), then the patterns.
    fn rules_for<'a>(&'a self, client: &ClientInfo) -> impl Iterator<Item = &'a Rule> + Clone + 'a {
        let own = match &client.username {
            Some(username) => self.users.get(username).map_or(&[][..], Vec::as_slice),
            None => self.anonymous.as_slice(),
        };
        own.iter().chain(&self.patterns)
    }

    /// Whether `client` may have `wanted` access to everything `target` (a topic name or a
    /// filter) can match. Deny rules are asked first and win.
    fn allows(&self, client: &ClientInfo, wanted: Wanted, target: &str) -> bool {
        let address = client.peer.map(|peer| peer.ip().to_string());
        let values = Client {
            client_id: Value::of(Some(client.client_id.as_str())),
            username: Value::of(client.username.as_deref()),
            address: Value::of(address.as_deref()),
            attributes: &client.attributes,
        };
        let target = || target.split('/').map(Level::parse);
        let rules = self.rules_for(client);
        for rule in rules.clone().filter(|rule| rule.access == Access::Deny) {
            match rule.applies(&values) {
                Applies::No => {}
                Applies::Unsafe => return false,
                Applies::Yes if intersects(rule.levels(&values), target()) => return false,
                Applies::Yes => {}
            }
        }
        rules
            .filter(|rule| rule.access.grants(wanted) && rule.applies(&values) == Applies::Yes)
            .any(|rule| covers(rule.levels(&values), target()))
    }
}

/// Parses what follows `topic` or `pattern`: an optional access word, then the topic, which
/// may contain spaces.
fn parse_rule(keyword: &'static str, rest: &str, substitute: bool) -> Result<Rule, LineError> {
    let (first, after) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let access = match first {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    };
    let (access, topic) = match access {
        Some(access) => (access, after.trim_start()),
        None => (Access::ReadWrite, rest),
    };
    if topic.is_empty() {
        return Err(LineError::MissingTopic(keyword));
    }
    TopicFilter::new(topic).map_err(|error| LineError::InvalidTopic { topic: topic.to_owned(), error })?;
    let levels = topic
        .split('/')
        .map(|level| match level {
            "+" => Ok(RuleLevel::SingleWildcard),
            "#" => Ok(RuleLevel::MultiWildcard),
            "%c" if substitute => Ok(RuleLevel::ClientId),
            "%u" if substitute => Ok(RuleLevel::Username),
            "%a" if substitute => Ok(RuleLevel::Address),
            attribute
                if substitute && attribute.starts_with("%{") && attribute.ends_with('}') && attribute.len() > 3 =>
            {
                Ok(RuleLevel::Attribute(attribute[2..attribute.len() - 1].into()))
            }
            literal
                if substitute
                    && (literal.contains("%c")
                        || literal.contains("%u")
                        || literal.contains("%a")
                        || literal.contains("%{")) =>
            {
                Err(LineError::PartialSubstitution(topic.to_owned()))
            }
            literal => Ok(RuleLevel::Literal(literal.into())),
        })
        .collect::<Result<_, _>>()?;
    Ok(Rule { access, levels })
}

impl Authorizer for AclFile {
    fn can_publish(&self, client: &ClientInfo, topic: &TopicName) -> bool {
        self.allows(client, Wanted::Write, topic.as_str())
    }

    fn can_subscribe(&self, client: &ClientInfo, filter: &TopicFilter) -> bool {
        self.allows(client, Wanted::Read, filter.as_str())
    }

    fn can_read(&self, client: &ClientInfo, topic: &TopicName) -> bool {
        self.allows(client, Wanted::Read, topic.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> Result<Rule, LineError> {
        let (keyword, rest) = line.split_once(' ').unwrap();
        parse_rule(if keyword == "topic" { "topic" } else { "pattern" }, rest, keyword == "pattern")
    }

    #[test]
    fn access_words_are_optional_and_topics_may_hold_spaces() {
        let parsed = rule("topic a/b").unwrap();
        assert_eq!(parsed.access, Access::ReadWrite);
        assert_eq!(parsed.levels, [RuleLevel::Literal("a".into()), RuleLevel::Literal("b".into())]);
        assert_eq!(rule("topic deny a/#").unwrap().access, Access::Deny);
        assert_eq!(rule("topic write  x").unwrap().access, Access::Write);
        let spaced = rule("topic read room 1/temp").unwrap();
        assert_eq!(spaced.levels[0], RuleLevel::Literal("room 1".into()));
        // Not an access word: the whole rest is the topic.
        assert_eq!(rule("topic reader/x").unwrap().levels[0], RuleLevel::Literal("reader".into()));
    }

    #[test]
    fn substitutions_only_in_patterns_and_only_as_whole_levels() {
        assert_eq!(rule("pattern read a/%c/%u").unwrap().levels[1..], [RuleLevel::ClientId, RuleLevel::Username]);
        assert_eq!(rule("topic read a/%c").unwrap().levels[1], RuleLevel::Literal("%c".into()));
        assert_eq!(rule("pattern read a/x%c"), Err(LineError::PartialSubstitution("a/x%c".into())));
        assert_eq!(rule("pattern read t/%{tenant}/#").unwrap().levels[1], RuleLevel::Attribute("tenant".into()));
        assert_eq!(rule("pattern read a/x%{tenant}"), Err(LineError::PartialSubstitution("a/x%{tenant}".into())));
    }

    #[test]
    fn rule_errors() {
        assert_eq!(rule("topic read"), Err(LineError::MissingTopic("topic")));
        assert_eq!(rule("pattern deny "), Err(LineError::MissingTopic("pattern")));
        assert!(matches!(rule("topic a/#/b"), Err(LineError::InvalidTopic { .. })));
        assert!(matches!(rule("topic read a+"), Err(LineError::InvalidTopic { .. })));
    }

    #[test]
    fn unsafe_values_never_grant_and_always_deny() {
        assert!(matches!(Value::of(Some("a/b")), Value::Unsafe));
        assert!(matches!(Value::of(Some("#")), Value::Unsafe));
        assert!(matches!(Value::of(Some("")), Value::Unsafe));
        assert!(matches!(Value::of(None), Value::Missing));
        let client = Client {
            client_id: Value::of(Some("+")),
            username: Value::Missing,
            address: Value::Missing,
            attributes: &[],
        };
        assert_eq!(rule("pattern read a/%c").unwrap().applies(&client), Applies::Unsafe);
        assert_eq!(rule("pattern read a/%u").unwrap().applies(&client), Applies::No);
        assert_eq!(rule("pattern read a/%u/%c").unwrap().applies(&client), Applies::Unsafe);
        assert_eq!(rule("pattern read a/b").unwrap().applies(&client), Applies::Yes);
    }
}
