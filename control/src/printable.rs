//! Messages as a terminal can show them. An error that quotes what the
//! user gave (an argument, a `-R` line, a config value) quotes it as
//! given, and that may be a megabyte, or hold NUL, terminal escapes or an
//! invisible byte-order mark. [`printable`] is applied where `l4vsadm`
//! and `l4vs` print such a message, so each error keeps its own words.

use std::fmt::Write;

/// The longest word (a run of characters between spaces or line breaks)
/// shown whole, in characters: longer than any the programs write
/// themselves (clap's usage line for `l4vsadm` has one of about 140,
/// its alternatives joined by `|`; a test holds both programs' usage
/// lines under it).
pub const LONGEST_WORD: usize = 200;

/// How much of a longer word is shown, in characters.
const KEPT: usize = 60;

/// `text` with every character a terminal would not show as itself
/// escaped as Rust writes it in a string literal (`\0`, `\u{1b}`,
/// `\u{feff}`; tabs and carriage returns as `\t` and `\r`), quotes and
/// backslashes left as they are, and each word longer than
/// [`LONGEST_WORD`] characters cut to its first 60, followed by
/// `… (N bytes)` with its length in bytes. Line breaks are kept.
///
/// What counts as not shown is what `char::escape_debug` escapes: control
/// characters, format characters such as U+FEFF and the bidirectional
/// overrides, unassigned code points, and combining marks (as they would
/// join the character before them).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(1024));
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, word) in line.split(' ').enumerate() {
            if j > 0 {
                out.push(' ');
            }
            if word.chars().nth(LONGEST_WORD).is_some() {
                push_escaped(&mut out, word.chars().take(KEPT));
                let _ = write!(out, "… ({} bytes)", word.len());
            } else {
                push_escaped(&mut out, word.chars());
            }
        }
    }
    out
}

/// The command line parsed as `C`, as `C::parse()` does, except that a
/// command-line error is printed through [`printable`] (without clap's
/// colours). Help and version are printed as clap prints them, exit 0.
///
/// Exits with status 2 (clap's) after printing an error; returns
/// otherwise.
pub fn parse_args<C: clap::Parser>() -> C {
    match try_parse_plain::<C>(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprint!("{}", printable(&clap_text(&e)));
            std::process::exit(2);
        }
    }
}

/// `args` (the program's name first) parsed as `C` with clap's plain
/// styles, so that [`clap_text`] of an error holds no style sequences.
///
/// # Errors
/// clap's, for what `C` does not take (help and version among them).
pub fn try_parse_plain<C: clap::Parser>(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<C, clap::Error> {
    C::command()
        .styles(clap::builder::Styles::plain())
        .try_get_matches_from(args)
        .and_then(|mut m| C::from_arg_matches_mut(&mut m))
}

/// The text of a clap error from [`try_parse_plain`], with what the user
/// typed in it as typed, for [`printable`]: clap's plain text would strip
/// every escape sequence, a user's too, together with the character
/// after its ESC, and drop other control characters unseen.
pub fn clap_text(e: &clap::Error) -> String {
    e.render().ansi().to_string()
}

fn push_escaped(out: &mut String, chars: impl Iterator<Item = char>) {
    for c in chars {
        match c {
            '\'' | '"' | '\\' => out.push(c),
            c => out.extend(c.escape_debug()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_messages_are_unchanged() {
        for m in [
            "Scheduler not found: rrr (l4vs has rr wrr)",
            "line 3: unexpected argument '--bogus' found",
            "invalid fwmark value `0x' specified\n\nUsage: l4vsadm",
            "l4vs on /run/l4vs.sock: no answer within 10 s",
            "Dienst „web“ – café",
            "",
        ] {
            assert_eq!(printable(m), m);
        }
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(
            printable("unexpected argument '\u{feff}-A' found"),
            "unexpected argument '\\u{feff}-A' found"
        );
        assert_eq!(printable("a\0b\u{1b}[2Jc"), "a\\0b\\u{1b}[2Jc");
        assert_eq!(printable("x\ty\r"), "x\\ty\\r");
        assert_eq!(printable("right\u{202e}txt.exe"), "right\\u{202e}txt.exe");
        // A line break stays one: messages have several lines.
        assert_eq!(printable("one\ntwo"), "one\ntwo");
    }

    #[test]
    fn long_words_are_cut_with_their_length() {
        let value = "A".repeat(1 << 20);
        let shown = printable(&format!("Scheduler not found: {value} (l4vs has rr)"));
        assert_eq!(
            shown,
            format!(
                "Scheduler not found: {}… ({} bytes) (l4vs has rr)",
                "A".repeat(KEPT),
                1 << 20
            )
        );
        // The longest word shown whole is shown whole.
        let edge = "b".repeat(LONGEST_WORD);
        assert_eq!(printable(&edge), edge);
        let over = "é".repeat(LONGEST_WORD + 1);
        assert_eq!(
            printable(&over),
            format!("{}… ({} bytes)", "é".repeat(KEPT), over.len())
        );
    }

    #[test]
    fn a_cut_word_is_escaped_too() {
        let word = format!("\u{1b}{}", "z".repeat(LONGEST_WORD));
        assert_eq!(
            printable(&word),
            format!("\\u{{1b}}{}… ({} bytes)", "z".repeat(KEPT - 1), word.len())
        );
    }
}
