//! Scopes: what a token may do. Every route names the one it needs.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    QueuesRead,
    QueuesWrite,
    MessagesPush,
    MessagesPull,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::QueuesRead,
        Scope::QueuesWrite,
        Scope::MessagesPush,
        Scope::MessagesPull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::QueuesRead => "queues:read",
            Scope::QueuesWrite => "queues:write",
            Scope::MessagesPush => "messages:push",
            Scope::MessagesPull => "messages:pull",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a token holds. Unknown words are ignored, so tokens stay valid when new
/// scopes are added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub fn parse(space_separated: &str) -> Self {
        let bits = space_separated
            .split_whitespace()
            .filter_map(|word| Scope::ALL.into_iter().find(|s| s.as_str() == word))
            .fold(0, |bits, s| bits | s.bit());
        Scopes(bits)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// Every scope, space-separated: what `leaseq token` grants by default.
pub fn all_scopes() -> String {
    Scope::ALL.map(Scope::as_str).join(" ")
}

/// Marker types naming the scope a handler needs: `Principal<QueuesRead>`.
pub trait RequiredScope {
    const SCOPE: Scope;
}

macro_rules! required_scope {
    ($($name:ident => $scope:ident),*) => {$(
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl RequiredScope for $name {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

required_scope!(QueuesRead => QueuesRead, QueuesWrite => QueuesWrite, MessagesPush => MessagesPush, MessagesPull => MessagesPull);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_parsed_from_space_separated_words() {
        let scopes = Scopes::parse("queues:read  messages:pull unknown:thing");
        assert!(scopes.contains(Scope::QueuesRead));
        assert!(scopes.contains(Scope::MessagesPull));
        assert!(!scopes.contains(Scope::QueuesWrite));
        assert!(!scopes.contains(Scope::MessagesPush));
        assert_eq!(Scopes::parse(""), Scopes::default());
        let all = Scopes::parse(&all_scopes());
        assert!(Scope::ALL.iter().all(|s| all.contains(*s)));
    }
}
