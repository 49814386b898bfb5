//! Alertmanager's label matchers: `name=value`, `!=`, `=~` and `!~`, regexes anchored,
//! a missing label matching as the empty string.

use super::LabelSet;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }

    /// From the API's pair of flags.
    pub fn from_flags(is_equal: bool, is_regex: bool) -> Op {
        match (is_equal, is_regex) {
            (true, false) => Op::Equal,
            (false, false) => Op::NotEqual,
            (true, true) => Op::Regex,
            (false, true) => Op::NotRegex,
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, Op::Regex | Op::NotRegex)
    }

    pub fn is_equal(self) -> bool {
        matches!(self, Op::Equal | Op::Regex)
    }
}

/// One matcher, its regex compiled once.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// Longest regex accepted, so a hostile pattern cannot make every alert query slow.
const MAX_PATTERN_BYTES: usize = 4096;

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        let regex = if op.is_regex() {
            if value.len() > MAX_PATTERN_BYTES {
                return Err(format!(
                    "regular expression longer than {MAX_PATTERN_BYTES} bytes"
                ));
            }
            Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
            )
        } else {
            None
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Regex, Some(re)) => re.is_match(value),
            (Op::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }

    /// Whether the labels satisfy this matcher (a missing label counts as "").
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(&self.name).map(String::as_str).unwrap_or(""))
    }

    /// Whether the matcher is satisfied by a missing label.
    pub fn matches_empty(&self) -> bool {
        self.matches_value("")
    }

    /// The classic text form, e.g. `alertname=~"disk.*"`, as Alertmanager parses it:
    /// the value quoted (with `\"` and `\\` escapes) or bare.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let bad = || format!("bad matcher format: {text}");
        let trimmed = text.trim();
        let name_end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(trimmed.len());
        let name = &trimmed[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad());
        }
        let rest = trimmed[name_end..].trim_start();
        let (op, value) = [Op::Regex, Op::NotRegex, Op::NotEqual, Op::Equal]
            .into_iter()
            .find_map(|op| rest.strip_prefix(op.as_str()).map(|v| (op, v.trim())))
            .ok_or_else(bad)?;
        let value = match value.strip_prefix('"') {
            Some(quoted) => unquote(quoted.strip_suffix('"').ok_or_else(bad)?).ok_or_else(bad)?,
            None => value.to_string(),
        };
        Matcher::new(name, op, &value)
    }

    /// A list of matchers as `{a="b", c=~"d"}` or `a=b,c=~d`, as amtool and the
    /// `filter` parameters write them.
    pub fn parse_list(text: &str) -> Result<Vec<Matcher>, String> {
        let trimmed = text.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(trimmed);
        split_outside_quotes(inner)
            .into_iter()
            .filter(|part| !part.trim().is_empty())
            .map(Matcher::parse)
            .collect()
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Undoes Go-style escapes inside a quoted value; `None` for a dangling escape.
fn unquote(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            other => out.push(other),
        }
    }
    Some(out)
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The API's form of a matcher: `{"name", "value", "isRegex", "isEqual"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatcherBody {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl From<&Matcher> for MatcherBody {
    fn from(m: &Matcher) -> MatcherBody {
        MatcherBody {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: m.op.is_regex(),
            is_equal: m.op.is_equal(),
        }
    }
}

impl TryFrom<&MatcherBody> for Matcher {
    type Error = String;
    fn try_from(body: &MatcherBody) -> Result<Matcher, String> {
        Matcher::new(
            &body.name,
            Op::from_flags(body.is_equal, body.is_regex),
            &body.value,
        )
    }
}

/// Whether every matcher is satisfied.
pub fn all_match(matchers: &[Matcher], labels: &LabelSet) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_four_operators_quoted_or_bare() {
        let cases = [
            ("alertname=foo", Op::Equal, "foo"),
            ("alertname = \"foo bar\"", Op::Equal, "foo bar"),
            ("severity!=info", Op::NotEqual, "info"),
            ("instance=~\"web-.*\"", Op::Regex, "web-.*"),
            ("job!~db", Op::NotRegex, "db"),
            ("summary=\"say \\\"hi\\\"\"", Op::Equal, "say \"hi\""),
        ];
        for (text, op, value) in cases {
            let m = Matcher::parse(text).unwrap();
            assert_eq!((m.op, m.value.as_str()), (op, value), "{text}");
        }
        for bad in ["", "=x", "1a=b", "a", "a!b", "a=\"unterminated", "a=~\"(\""] {
            assert!(Matcher::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let set = labels(&[("instance", "web-1:9100")]);
        assert!(
            Matcher::parse("instance=~\"web-.*\"")
                .unwrap()
                .matches(&set)
        );
        assert!(!Matcher::parse("instance=~\"web\"").unwrap().matches(&set));
        assert!(Matcher::parse("team=\"\"").unwrap().matches(&set));
        assert!(Matcher::parse("team!~\".+\"").unwrap().matches(&set));
        assert!(Matcher::parse("team=~\".*\"").unwrap().matches_empty());
    }

    #[test]
    fn lists_split_outside_quotes() {
        let list = Matcher::parse_list("{alertname=\"a,b\", severity=~\"crit.*\"}").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].value, "a,b");
        let set = labels(&[("alertname", "a,b"), ("severity", "critical")]);
        assert!(all_match(&list, &set));
    }
}
