//! `security.policy`: allow or deny actions on resources.
//!
//! Patterns are exact strings or contain `*`, which matches any run of
//! characters (`process.*`, `app:*`, `*`). A policy may belong to groups; a
//! scope may name a group to take every policy in it.

use serde::Deserialize;

/// Whether a matching policy allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The policy grants the actions.
    Allow,
    /// The policy refuses the actions (deny wins over allow).
    Deny,
}

/// The rules of a policy (the manifest's `policy:` field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// Actions, `*` wildcards allowed.
    pub actions: OneOrMany,
    /// Resources (entry ids), `*` wildcards allowed.
    pub resources: OneOrMany,
    /// Allow or deny.
    pub effect: Effect,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The `security.policy` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The rules.
    pub policy: PolicyRules,
    /// The groups the policy belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Free-form metadata, kept as written.
    #[serde(default)]
    pub meta: Option<serde_yaml::Value>,
}

/// A booted policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The entry id.
    pub id: String,
    /// Actions, `*` wildcards allowed.
    pub actions: Vec<String>,
    /// Resources, `*` wildcards allowed.
    pub resources: Vec<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// The groups the policy belongs to.
    pub groups: Vec<String>,
}

impl Policy {
    /// A policy from its entry.
    pub fn new(id: &str, config: &PolicyConfig) -> Self {
        Policy {
            id: id.to_owned(),
            actions: config.policy.actions.to_vec(),
            resources: config.policy.resources.to_vec(),
            effect: config.policy.effect,
            groups: config.groups.clone(),
        }
    }

    /// This policy's effect if it matches `action` on `resource`.
    pub fn decide(&self, action: &str, resource: &str) -> Option<Effect> {
        let hit = self.actions.iter().any(|p| pattern_matches(p, action))
            && self.resources.iter().any(|p| pattern_matches(p, resource));
        hit.then_some(self.effect)
    }
}

/// Glob match where `*` stands for any run of characters. Runs for every
/// rule a policy check looks at, so it allocates nothing: the text before
/// the first `*` must start `value`, the text after the last must end it,
/// and the parts between are found left to right in what is in between.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern == value;
    };
    let (middle, last) = tail.rsplit_once('*').unwrap_or(("", tail));
    let Some(rest) = value.strip_prefix(head) else {
        return false;
    };
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    for part in middle.split('*').filter(|p| !p.is_empty()) {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_any_run() {
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("process.*", "process.spawn"));
        assert!(!pattern_matches("process.*", "proc"));
        assert!(pattern_matches("app:*:x", "app:a:b:x"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
        assert!(!pattern_matches("a*b", "ba"));
        // The head and the tail may not share characters of the value.
        assert!(!pattern_matches("a*a", "a"));
        assert!(pattern_matches("a*a", "aa"));
        assert!(!pattern_matches("ab*ba", "aba"));
        assert!(pattern_matches("*x*y*", "axbyc"));
        assert!(!pattern_matches("*x*y*", "aybxc"));
        assert!(pattern_matches("a*b*c", "abc"));
        assert!(!pattern_matches("a*bc*c", "abc"));
        assert!(pattern_matches("**", ""));
        assert!(pattern_matches("", ""));
        assert!(!pattern_matches("", "x"));
        assert!(pattern_matches("é*ü", "éaü"));
    }
}
