//! keepalived.conf's syntax: lines of words, `{ }` blocks, comments and
//! `include`, read into a tree of [`Stmt`]s that know their file and line.
//!
//! The rules are keepalived's (lib/parser.c, `read_line`, `decomment`,
//! `alloc_strvec`, `process_stream`):
//! - A line is cut at the first `!` or `#` outside double quotes (`\!`
//!   and `\#` stand for the characters themselves).
//! - Words are separated by blanks; `"..."` is one word without its
//!   quotes. `{` and `}` are tokens of their own wherever they stand
//!   outside quotes, so `real_server 1.2.3.4 80 { weight 2 }` is three
//!   statements.
//! - A statement ends at the end of its line or at a brace; a `{` opens
//!   the block of the statement before it, on the same line or on the
//!   line before.
//! - `include PATTERN` (and `includer`, `includem`, `includew`,
//!   `includeb`, `includea`, which differ only in what keepalived reports)
//!   reads the files the glob pattern matches, in sorted order, in place
//!   of the line; a relative pattern is relative to the directory of the
//!   file that includes it, as keepalived (which changes into that
//!   directory) reads it. `*`, `?` and `[...]` are understood; brace
//!   patterns (`{a,b}`) are refused. A pattern that matches nothing is a
//!   warning (keepalived passes over it silently).
//!
//! Refused, because their meaning depends on what the import cannot know
//! or does not implement: `$NAME=...` parameter definitions, `~SEQ` and
//! `~LST` loops, `@ID` lines (applied only on the host whose config_id is
//! ID) that hold a brace or an `include`. An `@ID` line is otherwise kept
//! with its condition ([`Stmt::condition`]): the mapping refuses it where
//! it would be carried over.
//!
//! Limits: includes nest at most [`MAX_INCLUDE_DEPTH`] deep and a file
//! never includes itself; all files together are at most
//! [`crate::config::MAX_CONFIG_BYTES`]; blocks nest at most
//! [`MAX_BLOCK_DEPTH`] deep.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::{error, ImportError, Pos, Warnings};
use crate::config;

/// The deepest `include` nesting read.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// The deepest block nesting read (keepalived's own go 4 deep).
pub const MAX_BLOCK_DEPTH: usize = 32;
/// The most files one `include` pattern may match.
pub const MAX_INCLUDE_MATCHES: usize = 1024;

/// One statement: a keyword, its arguments, and its block if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// The keyword and its arguments, never empty.
    pub words: Vec<String>,
    /// Where it starts.
    pub pos: Pos,
    /// Its `{ ... }` block.
    pub block: Option<Vec<Stmt>>,
    /// `Some(ID)` when its line started `@ID` (or `@^ID`, kept as `^ID`).
    pub condition: Option<String>,
}

impl Stmt {
    /// The keyword.
    pub fn keyword(&self) -> &str {
        &self.words[0]
    }
}

/// Words joined by spaces, escaped and cut for a message as a value is
/// ([`config::echo_unquoted`]: 64 characters, then `… (N bytes)`).
pub fn shown(words: &[String]) -> String {
    config::echo_unquoted(&words.join(" "))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    /// The end of a line.
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
    condition: Option<String>,
}

/// Reads keepalived.conf text (from a file called `file`) into its
/// statements, following `include`s.
///
/// # Errors
/// A syntax error (an unterminated quote, a `}` without a block, a block
/// never closed, a `{` without a statement), a refused construct (see
/// the module doc), or an included file that cannot be read, with the
/// line.
pub fn parse(
    text: &str,
    file: &Arc<str>,
    warnings: &mut Warnings,
) -> Result<Vec<Stmt>, ImportError> {
    let mut lexer = Lexer {
        tokens: Vec::new(),
        bytes: text.len() as u64,
        stack: Vec::new(),
        warnings,
    };
    let dir = Path::new(&**file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if let Ok(c) = std::fs::canonicalize(&**file) {
        lexer.stack.push(c);
    }
    lexer.file(text, file, &dir)?;
    let tokens = lexer.tokens;
    let mut at = 0;
    block(&tokens, &mut at, None, 0)
}

struct Lexer<'w> {
    tokens: Vec<Token>,
    /// Bytes read so far, all files together.
    bytes: u64,
    /// The canonical paths of the files being read, outermost first.
    stack: Vec<PathBuf>,
    warnings: &'w mut Warnings,
}

impl Lexer<'_> {
    /// Adds the tokens of `text`, the file `file` in directory `dir`.
    fn file(&mut self, text: &str, file: &Arc<str>, dir: &Path) -> Result<(), ImportError> {
        for (n, raw) in text.split('\n').enumerate() {
            let pos = Pos::new(file, u32::try_from(n + 1).unwrap_or(u32::MAX));
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let line = decomment(raw).map_err(|m| error(&pos, m))?;
            if line.is_empty() {
                continue;
            }
            let (condition, rest) = match line.strip_prefix('@') {
                Some(after) => {
                    // keepalived drops an `@ID` line with nothing after the ID.
                    let Some((id, rest)) = after.split_once([' ', '\t']) else {
                        continue;
                    };
                    (Some(id.to_owned()), rest.trim_start())
                }
                None => (None, line.as_str()),
            };
            if rest.starts_with('$') {
                return Err(error(
                    &pos,
                    "parameter definitions and substitutions ($NAME) are not supported by the import: \
                     expand them first (keepalived -t --config-test prints nothing expanded; \
                     write the values in)",
                ));
            }
            if rest.starts_with("~SEQ") || rest.starts_with("~LST") {
                return Err(error(
                    &pos,
                    "~SEQ and ~LST loops are not supported by the import: write the lines they make",
                ));
            }
            if let Some(pattern) = include_pattern(rest) {
                if condition.is_some() {
                    return Err(conditional_error(&pos));
                }
                self.include(pattern, &pos, dir)?;
                continue;
            }
            let start = self.tokens.len();
            tokenize(rest, &pos, &condition, &mut self.tokens)?;
            if condition.is_some()
                && self.tokens[start..]
                    .iter()
                    .any(|t| matches!(t.tok, Tok::Open | Tok::Close))
            {
                return Err(conditional_error(&pos));
            }
            self.tokens.push(Token {
                tok: Tok::End,
                pos,
                condition: None,
            });
        }
        Ok(())
    }

    /// Reads the files `pattern` matches, relative to `dir`.
    fn include(&mut self, pattern: &str, pos: &Pos, dir: &Path) -> Result<(), ImportError> {
        if pattern.is_empty() {
            return Err(error(pos, "include without a file name"));
        }
        if pattern.contains(['{', '}']) {
            return Err(error(
                pos,
                "brace patterns ({a,b}) in include are not supported by the import: write one include a pattern",
            ));
        }
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            return Err(error(
                pos,
                format!("includes nest more than {MAX_INCLUDE_DEPTH} deep"),
            ));
        }
        let path = Path::new(pattern);
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        let matches = glob(&full).map_err(|m| error(pos, m))?;
        if matches.is_empty() {
            self.warnings.warn(
                pos,
                format!(
                    "include {}: no file matches, so nothing is included (keepalived passes over it too)",
                    config::echo(pattern)
                ),
            );
        }
        for m in matches {
            let name: Arc<str> = Arc::from(m.display().to_string());
            if m.is_dir() {
                self.warnings.warn(
                    pos,
                    format!("include: {name} is a directory, not read (as keepalived)"),
                );
                continue;
            }
            let canonical = std::fs::canonicalize(&m)
                .map_err(|e| error(pos, format!("include {name}: {e}")))?;
            if self.stack.contains(&canonical) {
                return Err(error(
                    pos,
                    format!("include {name}: the file includes itself (through this line), which would never end"),
                ));
            }
            let bytes = config::read_config_file(&m, "the included file")
                .map_err(|e| error(pos, format!("include {name}: {e}")))?;
            self.bytes += bytes.len() as u64;
            if self.bytes > config::MAX_CONFIG_BYTES {
                return Err(error(
                    pos,
                    format!(
                        "include {name}: the files together are more than {} bytes (64 MiB)",
                        config::MAX_CONFIG_BYTES
                    ),
                ));
            }
            let text = String::from_utf8(bytes).map_err(|e| {
                error(
                    pos,
                    format!(
                        "include {name}: the file is not UTF-8 text: invalid byte at offset {}",
                        e.utf8_error().valid_up_to()
                    ),
                )
            })?;
            let sub_dir = m.parent().map(Path::to_path_buf).unwrap_or_default();
            self.stack.push(canonical);
            self.warnings.read_file(&name);
            self.file(super::without_bom(&text), &name, &sub_dir)?;
            self.stack.pop();
        }
        Ok(())
    }
}

fn conditional_error(pos: &Pos) -> ImportError {
    error(
        pos,
        "a conditional line (@ID) that opens or closes a block, or includes files, applies only on the host \
         whose config_id is ID, which the import cannot know: write the lines as that host reads them",
    )
}

/// The pattern of an `include` line (keepalived's `is_include`), if it
/// is one.
fn include_pattern(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        c if c == ' ' || c == '\t' => rest,
        'r' | 'm' | 'w' | 'b' | 'a' => {
            let r = &rest[1..];
            if !r.starts_with([' ', '\t']) {
                return None;
            }
            r
        }
        _ => return None,
    };
    Some(rest.trim())
}

/// keepalived's `decomment`: the line without leading and trailing blanks
/// and without its comment; `\!` and `\#` outside quotes become `!` and
/// `#`.
///
/// # Errors
/// A double quote is not closed.
fn decomment(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut chars = raw.trim_start_matches([' ', '\t']).chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some('#' | '!') if !quote => {
                    out.push(chars.next().unwrap_or('#'));
                }
                Some(_) => {
                    out.push(c);
                    out.push(chars.next().unwrap_or(' '));
                }
                None => out.push(c),
            },
            '!' | '#' if !quote => break,
            _ => out.push(c),
        }
    }
    if quote {
        return Err("a double quote (\") is not closed on this line".to_owned());
    }
    Ok(out.trim_end_matches([' ', '\t']).to_owned())
}

/// keepalived's `alloc_strvec` with braces split off: the words and braces
/// of one decommented line.
fn tokenize(
    line: &str,
    pos: &Pos,
    condition: &Option<String>,
    out: &mut Vec<Token>,
) -> Result<(), ImportError> {
    let push = |out: &mut Vec<Token>, tok: Tok| {
        out.push(Token {
            tok,
            pos: pos.clone(),
            condition: condition.clone(),
        });
    };
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '{' => {
                chars.next();
                push(out, Tok::Open);
            }
            '}' => {
                chars.next();
                push(out, Tok::Close);
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => {
                            return Err(error(
                                pos,
                                "a double quote (\") is not closed on this line",
                            ))
                        }
                    }
                }
                push(out, Tok::Word(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '"' | '{' | '}') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                push(out, Tok::Word(word));
            }
        }
    }
    Ok(())
}

/// The statements of a block, up to its `}` (`owner` is the statement
/// that opened it) or, at the top (`owner` None), to the end.
fn block(
    tokens: &[Token],
    at: &mut usize,
    owner: Option<&Pos>,
    depth: usize,
) -> Result<Vec<Stmt>, ImportError> {
    let mut out: Vec<Stmt> = Vec::new();
    let mut current: Option<Stmt> = None;
    // The statement a `{` on the next line would open: the last one, ended
    // by its line's end, with nothing after it.
    let mut open_candidate: Option<usize> = None;
    while let Some(t) = tokens.get(*at) {
        *at += 1;
        match &t.tok {
            Tok::Word(w) => {
                open_candidate = None;
                current
                    .get_or_insert_with(|| Stmt {
                        words: Vec::new(),
                        pos: t.pos.clone(),
                        block: None,
                        condition: t.condition.clone(),
                    })
                    .words
                    .push(w.clone());
            }
            Tok::End => {
                if let Some(s) = current.take() {
                    out.push(s);
                    open_candidate = Some(out.len() - 1);
                }
            }
            Tok::Open => {
                let target = match (current.take(), open_candidate) {
                    (Some(s), _) => {
                        out.push(s);
                        out.len() - 1
                    }
                    (None, Some(i)) => i,
                    (None, None) => {
                        return Err(error(
                            &t.pos,
                            "`{` without a keyword before it: a block belongs to a statement such as `real_server 10.0.0.1 80 {`",
                        ))
                    }
                };
                open_candidate = None;
                if out[target].condition.is_some() {
                    return Err(conditional_error(&out[target].pos));
                }
                if depth >= MAX_BLOCK_DEPTH {
                    return Err(error(
                        &t.pos,
                        format!("blocks nest more than {MAX_BLOCK_DEPTH} deep"),
                    ));
                }
                let owner_pos = out[target].pos.clone();
                let inner = block(tokens, at, Some(&owner_pos), depth + 1)?;
                out[target].block = Some(inner);
            }
            Tok::Close => {
                if let Some(s) = current.take() {
                    out.push(s);
                }
                if owner.is_none() {
                    return Err(error(
                        &t.pos,
                        "`}` without a block to close: a `{` is missing before it, or this `}` is one too many",
                    ));
                }
                return Ok(out);
            }
        }
    }
    if let Some(s) = current.take() {
        out.push(s);
    }
    match owner {
        Some(pos) => Err(error(
            pos,
            "the block opened here is never closed: a `}` is missing",
        )),
        None => Ok(out),
    }
}

/// The existing paths `pattern` matches, sorted; `*`, `?` and `[...]`
/// may stand in any component. Files whose name starts with `.` match
/// only a pattern component that does too (glob(3)).
///
/// # Errors
/// A component is not UTF-8, or more than [`MAX_INCLUDE_MATCHES`] paths
/// match.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut current = vec![PathBuf::new()];
    for comp in pattern.components() {
        let Component::Normal(name) = comp else {
            current.iter_mut().for_each(|c| c.push(comp.as_os_str()));
            continue;
        };
        let name = name
            .to_str()
            .ok_or_else(|| "the include pattern is not UTF-8".to_owned())?;
        if !name.contains(['*', '?', '[']) {
            current.iter_mut().for_each(|c| c.push(name));
            continue;
        }
        let pat = Pattern::new(name);
        let mut next = Vec::new();
        for base in &current {
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(n) = e.file_name().into_string() else {
                    continue;
                };
                if (n.starts_with('.') && !name.starts_with('.')) || !pat.matches(&n) {
                    continue;
                }
                next.push(base.join(n));
                if next.len() > MAX_INCLUDE_MATCHES {
                    return Err(format!(
                        "the include pattern matches more than {MAX_INCLUDE_MATCHES} paths"
                    ));
                }
            }
        }
        current = next;
    }
    let mut found: Vec<PathBuf> = current.into_iter().filter(|p| p.exists()).collect();
    found.sort();
    Ok(found)
}

/// One item of a glob pattern component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(char),
    /// `?`
    One,
    /// `*`
    Any,
    /// `[...]`: ranges (a single character is `(c, c)`), negated by a
    /// leading `!` or `^`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A glob pattern of one path component (fnmatch(3) without flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern(Vec<Item>);

impl Pattern {
    /// Compiles `p`; a `[` without its `]` is a literal `[`, `\c` is `c`.
    pub(super) fn new(p: &str) -> Pattern {
        let chars: Vec<char> = p.chars().collect();
        let mut items = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => items.push(Item::Any),
                '?' => items.push(Item::One),
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    items.push(Item::Literal(chars[i]));
                }
                '[' => match class(&chars[i + 1..]) {
                    Some((item, used)) => {
                        items.push(item);
                        i += used;
                    }
                    None => items.push(Item::Literal('[')),
                },
                c => items.push(Item::Literal(c)),
            }
            i += 1;
        }
        Pattern(items)
    }

    /// Whether `name` matches: greedy `*` with backtracking to the last
    /// star, which is linear in practice and never exponential.
    pub(super) fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        let p = &self.0;
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let one = |item: &Item, c: char| match item {
                Item::Literal(l) => *l == c,
                Item::One => true,
                Item::Class { negated, ranges } => {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
                }
                Item::Any => false,
            };
            if pi < p.len() && p[pi] == Item::Any {
                star = Some((pi, si));
                pi += 1;
            } else if pi < p.len() && one(&p[pi], s[si]) {
                pi += 1;
                si += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|i| *i == Item::Any)
    }
}

/// A `[...]` class from the characters after its `[`: the item and how
/// many characters it took, `]` included; None without a closing `]`.
fn class(chars: &[char]) -> Option<(Item, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Item::Class { negated, ranges }, i + 1));
        }
        first = false;
        if i + 2 < chars.len() && chars[i + 1] == '-' && chars[i + 2] != ']' {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}
