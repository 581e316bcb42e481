//! Groups of users: the OCSG seed's group URIs (002_050589298000c9b6.txt, "a group owner with a
//! group URI"): a token issued to a group's owner may act for any member of the group, which the
//! token validation checks with one membership lookup per request.
use serde::{Deserialize, Serialize};

/// A named group. Its members are kept as separate membership records (see
/// [`crate::store::GroupStore`]), never inside this record, so a membership check is one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// 1 to 64 characters of `[A-Za-z0-9._-]` ([`Group::valid_name`]).
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl Group {
    /// Longest group name.
    pub const MAX_NAME: usize = 64;

    /// Whether `name` is a valid group name: 1 to 64 characters of `[A-Za-z0-9._-]` (safe in a
    /// URL path segment, a DynamoDB key and an audit line without escaping).
    pub fn valid_name(name: &str) -> bool {
        (1..=Self::MAX_NAME).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }
}

#[cfg(test)]
mod tests {
    use super::Group;

    #[test]
    fn group_names() {
        for ok in ["a", "staff", "Team_A-1.eu", &"x".repeat(64), "..", "-"] {
            assert!(Group::valid_name(ok), "{ok}");
        }
        for bad in ["", &"x".repeat(65), "a b", "a/b", "a#b", "é", "a%2Fb", "a:b", "a\u{0}"] {
            assert!(!Group::valid_name(bad), "{bad}");
        }
    }
}
