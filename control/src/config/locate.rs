//! Turns a serde-saphyr error into a [`ConfigError`] with a key path.
//!
//! serde-saphyr reports a line and column but not the key path, so the path
//! is recovered by replaying the YAML parser's events up to that position and
//! naming the node found there. On a syntax error the events stop at the
//! error, and the path is that of the last node read before it.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::{Event, Parser};
use serde_saphyr::Error;

use super::{
    clip, echo, yaml_budget, ConfigError, MAX_ALIAS_REPLAYED_EVENTS, MAX_ECHO_CHARS,
    MAX_YAML_EVENTS, MAX_YAML_NODES,
};

/// The most characters of a parser message passed on: serde-saphyr's own
/// messages may quote the document.
const MAX_PARSER_MESSAGE_CHARS: usize = 200;

/// Which node to name when several start at the error position (a block
/// mapping starts where its first key does).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The outermost node starting there, e.g. a value of the wrong type.
    Outer,
    /// The mapping there, e.g. one lacking a key: serde-saphyr points at a
    /// flow mapping's first key rather than at its `{`.
    Mapping,
    /// The last node starting at or before the position, e.g. an unknown key.
    Inner,
}

enum Frame {
    Map { key: String, expect_key: bool },
    Seq { next: usize },
}

/// An open collection while replaying: its kind, path and start.
struct Open {
    frame: Frame,
    path: String,
    at: (usize, usize),
}

/// The key path of the node at `(line, column)` (1-based, characters) and
/// where that node starts.
fn key_path_at(text: &str, line: usize, column: usize, pick: Pick) -> (String, (usize, usize)) {
    let target = (line, column);
    let mut stack: Vec<Open> = Vec::new();
    let mut best = (String::new(), target);
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let pos = (span.start.line(), span.start.col() + 1);
        let (is_collection, scalar) = match &event {
            Event::Scalar(value, ..) => (false, Some(value.to_string())),
            Event::Alias(..) => (false, None),
            Event::SequenceStart(..) | Event::MappingStart(..) => (true, None),
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                continue;
            }
            _ => continue,
        };
        if pos > target {
            break;
        }
        let mut is_key = false;
        let path = match stack.last_mut() {
            None => String::new(),
            Some(Open {
                frame: Frame::Seq { next },
                path,
                ..
            }) => {
                *next += 1;
                format!("{path}[{}]", *next - 1)
            }
            Some(Open {
                frame: Frame::Map { key, expect_key },
                path,
                ..
            }) => {
                if *expect_key {
                    *key = scalar.map_or_else(|| "?".to_owned(), |k| key_segment(&k));
                    is_key = true;
                }
                *expect_key = !*expect_key;
                join(path, key)
            }
        };
        if pos == target && pick != Pick::Inner {
            if pick == Pick::Mapping && is_key {
                if let Some(map) = stack.last() {
                    return (map.path.clone(), map.at);
                }
            }
            return (path, pos);
        }
        best = (path.clone(), pos);
        if is_collection {
            let frame = match event {
                Event::MappingStart(..) => Frame::Map {
                    key: String::new(),
                    expect_key: true,
                },
                _ => Frame::Seq { next: 0 },
            };
            stack.push(Open {
                frame,
                path,
                at: pos,
            });
        }
    }
    // Report the error's own position, which may lie inside the node.
    (best.0, target)
}

/// A mapping key as a key-path segment: cut to [`MAX_ECHO_CHARS`] with `…`.
fn key_segment(key: &str) -> String {
    match clip(key, MAX_ECHO_CHARS) {
        (shown, false) => shown,
        (shown, true) => format!("{shown}…"),
    }
}

/// What serde found instead of what it expected, without echoing a string:
/// serde writes one as Rust's Debug form (`string "a\"b"`).
pub(super) fn describe_found(unexpected: &str) -> String {
    if unexpected.starts_with("string ") {
        "a string".to_owned()
    } else {
        clip(unexpected, MAX_ECHO_CHARS).0
    }
}

/// A parser message as it may be printed: bounded and without control
/// characters.
fn parser_message(msg: &str) -> String {
    match clip(msg, MAX_PARSER_MESSAGE_CHARS) {
        (shown, false) => shown,
        (shown, true) => format!("{shown}…"),
    }
}

/// What serde expected, and what it found, in the operator's terms. The
/// parser's wrappers that keep a value's place in the file (serde-saphyr's
/// `Spanned`) are no type an operator writes: what they take is the key's
/// plain value, and what they found instead came of a YAML tag such as
/// `!!binary` (its bytes as integers), which is not worth showing.
fn expected_value(expected: &str, unexpected: &str) -> String {
    if expected.contains("span-aware") {
        "expected the key's plain value (a YAML tag such as !!binary makes another type)".to_owned()
    } else {
        format!(
            "expected {}, found {}",
            parser_message(expected),
            describe_found(unexpected)
        )
    }
}

/// Which of the YAML parser's limits a document broke, in the operator's
/// terms.
pub(super) fn budget_message(breach: &BudgetBreach) -> String {
    let budget = yaml_budget();
    let bomb = "the limit against alias bombs (\"billion laughs\")";
    match breach {
        BudgetBreach::Nodes { .. } => format!(
            "the document has more than {MAX_YAML_NODES} nodes (the limit, sized for 100 000 real servers)"
        ),
        BudgetBreach::Events { .. } => format!(
            "the document has more than {MAX_YAML_EVENTS} YAML events (the limit, sized for 100 000 real servers)"
        ),
        BudgetBreach::ScalarBytes { .. } => format!(
            "the document's values add up to more than {} bytes (the limit)",
            budget.max_total_scalar_bytes
        ),
        BudgetBreach::Depth { .. } => format!(
            "lists and mappings nest more than {} levels deep",
            budget.max_depth
        ),
        BudgetBreach::Aliases { .. } => format!(
            "the document has more than {} YAML aliases (`*name`), {bomb}",
            budget.max_aliases
        ),
        BudgetBreach::Anchors { .. } => format!(
            "the document has more than {} YAML anchors (`&name`), {bomb}",
            budget.max_anchors
        ),
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => format!(
            "{aliases} YAML aliases (`*name`) for {anchors} {}: more than {} per anchor is over {bomb}",
            if *anchors == 1 { "anchor (`&name`)" } else { "anchors (`&name`)" },
            budget.alias_anchor_ratio_multiplier
        ),
        BudgetBreach::RecordedAnchorEvents { .. } | BudgetBreach::RecordedAnchorBytes { .. } => {
            format!("YAML anchors (`&name`) hold more than can be replayed, {bomb}")
        }
        BudgetBreach::MergeKeys { .. } => format!(
            "the document has more than {} YAML merge keys (`<<`)",
            budget.max_merge_keys
        ),
        _ => "the document is beyond one of the YAML parser's limits".to_owned(),
    }
}

/// `parent.key`, or `key` at the top level.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The message for a scalar of type `ty` that serde-saphyr could not read,
/// written `scalar` (the text at the error's place): an integer beyond
/// the type's range (which is at least as wide as the key's, checked after
/// reading) is said to be out of range; anything else (a word, a number
/// with leading zeros, a tagged value) is not of the type.
fn invalid_scalar(ty: &str, scalar: &str) -> String {
    if beyond_integer_type(ty, scalar) {
        format!("{} is out of range for this key", echo(scalar))
    } else {
        describe_scalar(ty)
    }
}

/// True when `scalar` is a decimal integer (an optional sign, digits)
/// outside the range of Rust integer type `ty`.
fn beyond_integer_type(ty: &str, scalar: &str) -> bool {
    let (min, max): (i128, u128) = match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX as u128),
        "i16" => (i16::MIN.into(), i16::MAX as u128),
        "i32" => (i32::MIN.into(), i32::MAX as u128),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX as u128),
        _ => return false,
    };
    let (negative, digits) = match scalar.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, scalar.strip_prefix('+').unwrap_or(scalar)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Leading zeros are refused for another reason (YAML 1.1's octal).
    if digits.len() > 1 && digits.starts_with('0') {
        return false;
    }
    match digits.parse::<u128>() {
        // More digits than u128 holds: beyond every type here.
        Err(_) => true,
        Ok(n) if negative => n > min.unsigned_abs(),
        Ok(n) => n > max,
    }
}

/// The plain scalar at 1-based `line` and `column` of `text`: up to the
/// first space, comma, bracket, brace or `#`; empty when there is none.
fn scalar_at(text: &str, line: usize, column: usize) -> &str {
    let Some(l) = text.lines().nth(line.wrapping_sub(1)) else {
        return "";
    };
    // The parser does not count a byte-order mark in its columns.
    let l = if line == 1 {
        l.strip_prefix('\u{feff}').unwrap_or(l)
    } else {
        l
    };
    let start = l
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(l.len(), |(i, _)| i);
    let rest = &l[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Describes the integer type serde-saphyr failed to read.
fn describe_scalar(ty: &str) -> String {
    match ty {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize"
        | "isize" => "expected an integer".to_owned(),
        "bool" => "expected true or false".to_owned(),
        "f32" | "f64" => "expected a number".to_owned(),
        other => format!("expected a value of type {other}"),
    }
}

/// Converts a serde-saphyr error on `text` into a located [`ConfigError`].
/// A hint for a keepalived keyword written where l4vs has its own key.
fn keepalived_hint(field: &str) -> &'static str {
    match field {
        "nopreempt" => " (keepalived's nopreempt is `preempt: false` here)",
        "advert_int" => " (l4vs takes advert_int_ms: keepalived's advert_int 1 is 1000)",
        "state" => " (l4vs starts every director as backup: the priorities decide)",
        "preempt_delay" => " (l4vs takes preempt_delay_ms)",
        "garp_master_delay" => " (l4vs takes garp_master_delay_ms)",
        _ => "",
    }
}

pub(super) fn yaml_error(err: &Error, text: &str, file: &str) -> ConfigError {
    let (line, column) = err.location().map_or((0, 0), |l| {
        (
            usize::try_from(l.line()).unwrap_or(usize::MAX),
            usize::try_from(l.column()).unwrap_or(usize::MAX),
        )
    });
    let mut inner = err.without_snippet();
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let path = |pick| key_path_at(text, line, column, pick).0;
    let mut at = (line, column);
    let (key, message) = match inner {
        Error::SerdeUnknownField {
            field, expected, ..
        } => (
            path(Pick::Inner),
            format!(
                "unknown key {}; expected one of: {}{}",
                echo(field),
                expected.join(", "),
                keepalived_hint(field)
            ),
        ),
        Error::SerdeMissingField { field, .. } => {
            // Point at the mapping that lacks the key, not at its last key.
            let (map, map_at) = key_path_at(text, line, column, Pick::Mapping);
            at = map_at;
            (join(&map, field), "missing required key".to_owned())
        }
        Error::DuplicateMappingKey { .. } => (path(Pick::Inner), "duplicate key".to_owned()),
        Error::InvalidScalar { ty, .. } => (
            path(Pick::Outer),
            invalid_scalar(ty, scalar_at(text, line, column)),
        ),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => (
            path(Pick::Outer),
            expected_value(expected, unexpected),
        ),
        Error::Unexpected { expected, .. } => {
            let message = match *expected {
                "sequence start" => "expected a list".to_owned(),
                "mapping start" => "expected a mapping (key: value)".to_owned(),
                e if e.ends_with("scalar") => {
                    "expected a single value, found a list or mapping".to_owned()
                }
                e => format!("expected {e}"),
            };
            (path(Pick::Outer), message)
        }
        Error::NullIntoString { .. } => (
            path(Pick::Outer),
            "a value is required here, found null".to_owned(),
        ),
        Error::Eof { .. } => (
            String::new(),
            "the file is empty: expected a mapping with at least `workers` and `ports`".to_owned(),
        ),
        Error::MultipleDocuments { .. } => (
            String::new(),
            "expected one YAML document, found several (`---`)".to_owned(),
        ),
        Error::Budget { breach, .. } => (path(Pick::Inner), budget_message(breach)),
        Error::AliasReplayLimitExceeded { .. } => (
            path(Pick::Inner),
            format!(
                "YAML aliases (`*name`) expand to more than {MAX_ALIAS_REPLAYED_EVENTS} events, the limit against alias bombs (\"billion laughs\")"
            ),
        ),
        Error::AliasExpansionLimitExceeded { expansions, .. } => (
            path(Pick::Inner),
            format!("a YAML anchor (`&name`) is expanded {expansions} times, more than allowed"),
        ),
        Error::AliasReplayStackDepthExceeded { max_depth, .. } => (
            path(Pick::Inner),
            format!("YAML aliases (`*name`) nest more than {max_depth} deep"),
        ),
        // The parser stops where the text stops making sense, often on a
        // line whose key it could not read: the last key it read is named
        // as what the error comes after, not as the key in error.
        Error::ExternalMessage { msg, .. } => {
            let after = path(Pick::Inner);
            let message = parser_message(msg);
            if after.is_empty() {
                (after, format!("YAML syntax error: {message}"))
            } else {
                (
                    String::new(),
                    format!("YAML syntax error (after {after}): {message}"),
                )
            }
        }
        other => {
            use serde_saphyr::MessageFormatter;
            let msg = serde_saphyr::UserMessageFormatter.format_message(other);
            (path(Pick::Inner), parser_message(&msg))
        }
    };
    ConfigError {
        file: file.to_owned(),
        line: u32::try_from(at.0).unwrap_or(u32::MAX),
        column: u32::try_from(at.1).unwrap_or(u32::MAX),
        key,
        message,
    }
}
