//! ACL files, black-box: each rule kind, `%c`/`%u` patterns, deny precedence, subscriptions
//! decided by cover and intersection, and file errors with line numbers.

use tern_auth::{AclFile, AuthError, LineError};
use tern_codec::{TopicFilter, TopicName};
use tern_core::{Authorizer, ClientId, ClientInfo};

struct Acl {
    acl: AclFile,
    _dir: tempfile::TempDir,
}

fn acl_file(text: &str) -> Acl {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acl");
    std::fs::write(&path, text).unwrap();
    Acl { acl: AclFile::load(&path).unwrap(), _dir: dir }
}

fn load_error(text: &str) -> (AuthError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acl");
    std::fs::write(&path, text).unwrap();
    (AclFile::load(&path).unwrap_err(), path.display().to_string())
}

fn client(client_id: &str, username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: ClientId::new(client_id),
        username: username.map(str::to_owned),
        peer: None,
        attributes: Vec::new(),
    }
}

fn anonymous() -> ClientInfo {
    client("anon-1", None)
}

impl Acl {
    fn publish(&self, client: &ClientInfo, topic: &str) -> bool {
        self.acl.can_publish(client, &TopicName::new(topic).unwrap())
    }
    fn read(&self, client: &ClientInfo, topic: &str) -> bool {
        self.acl.can_read(client, &TopicName::new(topic).unwrap())
    }
    fn subscribe(&self, client: &ClientInfo, filter: &str) -> bool {
        self.acl.can_subscribe(client, &TopicFilter::new(filter).unwrap())
    }
}

#[test]
fn access_words_grant_what_they_say() {
    let acl = acl_file("topic read r\ntopic write w\ntopic readwrite rw\ntopic both\ntopic deny d\n");
    let anon = anonymous();
    assert!(acl.read(&anon, "r") && acl.subscribe(&anon, "r") && !acl.publish(&anon, "r"));
    assert!(!acl.read(&anon, "w") && !acl.subscribe(&anon, "w") && acl.publish(&anon, "w"));
    assert!(acl.read(&anon, "rw") && acl.subscribe(&anon, "rw") && acl.publish(&anon, "rw"));
    assert!(acl.read(&anon, "both") && acl.publish(&anon, "both"), "no access word means readwrite");
    assert!(!acl.read(&anon, "d") && !acl.subscribe(&anon, "d") && !acl.publish(&anon, "d"));
    assert!(!acl.read(&anon, "other") && !acl.publish(&anon, "other"), "only listed topics have access");
}

#[test]
fn topics_before_the_first_user_line_are_for_anonymous_clients_only() {
    let acl = acl_file("# anonymous\ntopic read public/#\n\nuser alice\ntopic alice/#\nuser bob\ntopic read bob/#\n");
    let anon = anonymous();
    let alice = client("c1", Some("alice"));
    let bob = client("c2", Some("bob"));
    let carol = client("c3", Some("carol"));
    assert!(acl.read(&anon, "public/news"));
    assert!(!acl.read(&alice, "public/news"), "anonymous rules apply to a user");
    assert!(!acl.read(&carol, "public/news"), "anonymous rules apply to a user without a section");
    assert!(acl.publish(&alice, "alice/x") && acl.read(&alice, "alice/x"));
    assert!(!acl.publish(&anon, "alice/x") && !acl.publish(&bob, "alice/x"));
    assert!(acl.read(&bob, "bob/x") && !acl.publish(&bob, "bob/x"));
    assert!(!acl.read(&carol, "bob/x"));
}

#[test]
fn a_user_section_may_continue_later_in_the_file() {
    let acl = acl_file("user alice\ntopic a\nuser bob\ntopic b\nuser alice\ntopic c\n");
    let alice = client("c1", Some("alice"));
    assert!(acl.publish(&alice, "a") && acl.publish(&alice, "c") && !acl.publish(&alice, "b"));
}

#[test]
fn patterns_apply_to_every_client_with_substitutions() {
    let acl = acl_file(
        "topic read nothing\nuser alice\ntopic x\npattern write devices/%c/state\npattern readwrite users/%u/#\n",
    );
    let alice = client("sensor-7", Some("alice"));
    let bob = client("sensor-8", Some("bob"));
    let anon = client("sensor-9", None);
    assert!(acl.publish(&alice, "devices/sensor-7/state"));
    assert!(!acl.publish(&alice, "devices/sensor-8/state"));
    assert!(acl.publish(&bob, "devices/sensor-8/state"), "patterns after a user line apply to everyone");
    assert!(acl.publish(&anon, "devices/sensor-9/state"), "%c patterns apply to anonymous clients");
    assert!(acl.read(&alice, "users/alice/inbox") && acl.subscribe(&alice, "users/alice/#"));
    assert!(!acl.read(&alice, "users/bob/inbox") && !acl.subscribe(&alice, "users/+/inbox"));
    assert!(acl.read(&bob, "users/bob"));
    assert!(
        !acl.read(&anon, "users/%u/x") && !acl.read(&anon, "users/x"),
        "a %u pattern matched a client without a user name"
    );
}

#[test]
fn ids_that_are_not_one_level_get_nothing_from_patterns() {
    let acl = acl_file(
        "pattern readwrite devices/%c/#\npattern deny private/%u\ntopic readwrite open/#\nuser eve\ntopic open/#\n",
    );
    // A `+` or `#` in the id would widen the pattern; a `/` would reach into another id's tree.
    for id in ["+", "#", "a/b", "x+"] {
        let sneaky = client(id, None);
        assert!(!acl.publish(&sneaky, "devices/victim/state"), "{id}");
        assert!(!acl.subscribe(&sneaky, "devices/#"), "{id}");
        assert!(acl.publish(&sneaky, "open/x"), "{id}: rules without %c still apply");
    }
    // A deny pattern that cannot be filled in denies everything to that client.
    let eve = client("e", Some("e/ve"));
    assert!(!acl.publish(&eve, "open/x"));
    let plain = client("e", Some("eve"));
    assert!(acl.publish(&plain, "open/x") && !acl.read(&plain, "private/eve"));
}

#[test]
fn deny_wins_wherever_it_is_in_the_file() {
    let acl = acl_file("topic readwrite a/#\ntopic deny a/secret\ntopic read b/+\npattern deny b/%c\n");
    let anon = client("me", None);
    assert!(acl.publish(&anon, "a/public") && acl.read(&anon, "a/public"));
    assert!(!acl.publish(&anon, "a/secret") && !acl.read(&anon, "a/secret"));
    assert!(acl.read(&anon, "b/other") && !acl.read(&anon, "b/me"));
    let deny_first = acl_file("topic deny a/secret\ntopic a/#\n");
    assert!(!deny_first.publish(&anon, "a/secret") && deny_first.publish(&anon, "a/public"));
}

#[test]
fn a_subscription_needs_one_rule_covering_it_and_no_deny_touching_it() {
    let acl = acl_file("topic read a/#\ntopic read b/+\ntopic read c/+/x\ntopic read d/#\ntopic deny d/secret\n");
    let anon = anonymous();
    for allowed in ["a", "a/b", "a/+", "a/#", "a/+/#", "b/x", "b/+", "c/y/x", "c/+/x", "d/public", "d/+/x"] {
        assert!(acl.subscribe(&anon, allowed), "{allowed} should be allowed");
    }
    for refused in ["b/#", "b", "b/x/y", "c/+/+", "c/#", "#", "+/b", "d/#", "d/+", "d/secret", "e"] {
        assert!(!acl.subscribe(&anon, refused), "{refused} should be refused");
    }
    // A wide subscription that was refused leaks nothing; the topics themselves still read.
    assert!(acl.read(&anon, "d/public") && !acl.read(&anon, "d/secret"));
}

#[test]
fn wildcard_rules_do_not_reach_dollar_topics() {
    let acl = acl_file("topic readwrite #\ntopic read $SYS/broker/#\n");
    let anon = anonymous();
    assert!(acl.publish(&anon, "any/topic") && acl.subscribe(&anon, "#") && acl.subscribe(&anon, "+/x"));
    assert!(!acl.publish(&anon, "$SYS/broker/uptime") && !acl.read(&anon, "$other/x"));
    assert!(!acl.subscribe(&anon, "$SYS/#"));
    assert!(acl.read(&anon, "$SYS/broker/uptime") && acl.subscribe(&anon, "$SYS/broker/+"));
}

#[test]
fn an_empty_file_allows_nothing() {
    let acl = acl_file("# nothing\n\n");
    assert!(!acl.publish(&anonymous(), "a") && !acl.subscribe(&anonymous(), "#"));
}

#[test]
fn bad_lines_are_errors_naming_file_and_line() {
    for (text, line, expected) in [
        ("topic a\nlevel a\n", 2, LineError::UnknownKeyword("level".into())),
        ("# c\n\nuser\n", 3, LineError::MissingUsername),
        ("topic read\n", 1, LineError::MissingTopic("topic")),
        ("user a\npattern deny\n", 2, LineError::MissingTopic("pattern")),
        ("pattern read a/x%c\n", 1, LineError::PartialSubstitution("a/x%c".into())),
        ("topics a\n", 1, LineError::UnknownKeyword("topics".into())),
    ] {
        let (error, path) = load_error(text);
        match &error {
            AuthError::Line { line: got, error: got_error, .. } => {
                assert_eq!((*got, got_error), (line, &expected), "{text:?}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
        assert!(error.to_string().starts_with(&format!("{path}:{line}: ")), "{error}");
    }
    let (error, _) = load_error("topic a/#/b\n");
    assert!(matches!(error, AuthError::Line { line: 1, error: LineError::InvalidTopic { .. }, .. }), "{error:?}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let error = AclFile::load("/nonexistent/tern/acl").unwrap_err();
    assert!(matches!(error, AuthError::Io { .. }));
    assert!(error.to_string().starts_with("/nonexistent/tern/acl: "), "{error}");
}

#[test]
fn whitespace_and_crlf_are_tolerated() {
    let acl = acl_file("  # indented comment\r\nuser\talice\r\n  topic  read   a b/c  \r\n");
    let alice = client("c", Some("alice"));
    assert!(acl.read(&alice, "a b/c"), "a topic may contain spaces after the access word");
}

/// `%{name}` patterns take their value from attributes the authenticator vouched for (JWT
/// claims), so claims are usable in ACL rules.
#[test]
fn attribute_patterns_use_authenticator_attributes() {
    let acl = acl_file("pattern readwrite tenants/%{tenant}/#\n");
    let mut acme = client("device-1", Some("device-1"));
    acme.attributes = vec![("tenant".into(), "acme".into())];
    assert!(acl.publish(&acme, "tenants/acme/telemetry"));
    assert!(!acl.publish(&acme, "tenants/globex/telemetry"));
    // No such attribute: the rule grants nothing.
    assert!(!acl.publish(&client("device-2", Some("device-2")), "tenants/acme/telemetry"));
    // A value that is not one level is never substituted.
    let mut sneaky = client("device-3", Some("device-3"));
    sneaky.attributes = vec![("tenant".into(), "acme/#".into())];
    assert!(!acl.publish(&sneaky, "tenants/acme/x"));
}

/// `%a` is the client's real IP address (taken from a PROXY header when there is one).
#[test]
fn address_patterns_use_the_real_client_address() {
    let acl = acl_file("pattern read sites/%a/#\n");
    let mut from_proxy = client("gateway", None);
    from_proxy.peer = Some("203.0.113.7:5555".parse().unwrap());
    assert!(acl.read(&from_proxy, "sites/203.0.113.7/status"));
    assert!(!acl.read(&from_proxy, "sites/198.51.100.1/status"));
    // Without a known address the rule grants nothing.
    assert!(!acl.read(&client("nowhere", None), "sites/203.0.113.7/status"));
}
