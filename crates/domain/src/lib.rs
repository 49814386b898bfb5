//! Muster's domain rules, free of I/O: every rule can be found here by its name and
//! tested without a database or a network.

/// Words that name themselves: each enum made with it reads and writes its snake_case
/// name, lists them all (`ALL`, `names()` for error messages) and parses them.
macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// Every name, for error messages.
            pub fn names() -> String {
                $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}
pub(crate) use named;

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod changes;
pub mod clock;
pub mod ical;
pub mod incidents;
pub mod notify;
pub mod oncall;
pub mod problem;
pub mod renewals;
pub mod signals;
pub mod slug;

pub use problem::{FieldError, FieldErrors};

/// `n` and the noun, plural unless `n` is one: "1 alert", "0 reports".
pub fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn counted_is_plural_unless_one() {
        assert_eq!(super::counted(1, "alert"), "1 alert");
        assert_eq!(super::counted(0, "report"), "0 reports");
        assert_eq!(super::counted(2, "report"), "2 reports");
    }
}
