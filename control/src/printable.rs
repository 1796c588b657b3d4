//! How `l4vsadm` and `l4vs` print messages that hold what the user typed
//! (an argument, a `-R` line, a file name, a director's answer quoting a
//! name). A value in a message is quoted by `config::echo`'s
//! rules where the message is made: control characters, zero-width and
//! bidirectional characters and the byte-order mark escaped (`\u{1b}`,
//! `\n`), and cut after [`crate::config::MAX_ECHO_CHARS`] characters with
//! its length. This module applies the same rules to what clap's errors
//! quote, and, as a last guard, to whole one-line messages.

use crate::config::{clip, echo_unquoted};

/// `text` with every character that `config::echo` escapes
/// escaped, line breaks included, and nothing cut: a one-line message
/// whose parts were not all made by l4vs (a file name, a director's
/// answer), so that no part of it can end the line or rewrite the
/// terminal. Values in it are expected to be cut where it was made.
pub fn printable(text: &str) -> String {
    clip(text, usize::MAX).0
}

/// The command line parsed as `C`, as `C::parse()` does, except that a
/// command-line error is printed as [`clap_message`] gives it (without
/// clap's colours). Help and version are printed as clap prints them,
/// with exit status 0, without bold or underline (plain styles). The help
/// printed for a missing subcommand (`l4vs` alone) is an error: on
/// stderr, status 2.
///
/// Exits with status 2 (clap's) after printing an error; returns
/// otherwise.
pub fn parse_args<C: clap::Parser>() -> C {
    match try_parse_plain::<C>(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprint!("{}", clap_message(&e));
            std::process::exit(2);
        }
    }
}

/// `args` (the program's name first) parsed as `C` with clap's plain
/// styles, so that [`clap_message`] of an error holds no style sequences.
///
/// # Errors
/// clap's, for what `C` does not take (help and version among them).
pub fn try_parse_plain<C: clap::Parser>(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<C, clap::Error> {
    let mut cmd = C::command().styles(clap::builder::Styles::plain());
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    // As clap's own try_parse_from: with the usage of the command.
    C::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
}

/// The text of a clap error from [`try_parse_plain`], its lines as clap
/// writes them, with each value the user gave (the error's context: the
/// unexpected argument, the invalid value) shown as
/// `config::echo` shows a value, inside clap's own quotes, and
/// anything else that would not print escaped as by [`printable`].
///
/// The text is taken with its escape sequences: clap's plain text strips
/// every sequence, a user's too, together with the character after its
/// ESC, and drops other control characters unseen.
pub fn clap_message(e: &clap::Error) -> String {
    use clap::error::ContextValue;
    let mut text = e.render().ansi().to_string();
    let mut values: Vec<&str> = e
        .context()
        .flat_map(|(_, v)| match v {
            ContextValue::String(s) => vec![s.as_str()],
            ContextValue::Strings(v) => v.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        })
        .filter(|v| !v.is_empty())
        .collect();
    // Longest first: a value inside another is replaced inside it. Only
    // inside clap's quotes, where it puts what the user gave: a value such
    // as a lone line break also occurs in clap's own text.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        let shown = echo_unquoted(v);
        if shown != v {
            text = text
                .split('\'')
                .enumerate()
                .map(|(i, part)| {
                    if i % 2 == 1 {
                        part.replace(v, &shown)
                    } else {
                        part.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("'");
        }
    }
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_ECHO_CHARS;

    #[derive(clap::Parser, Debug)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(short = 's', value_parser = ["rr", "wlc"])]
        scheduler: Option<String>,
    }

    fn message(args: &[&str]) -> String {
        let e = try_parse_plain::<Demo>(std::iter::once("demo").chain(args.iter().copied()))
            .expect_err("refused");
        clap_message(&e)
    }

    #[test]
    fn ordinary_messages_are_unchanged() {
        for m in [
            "Scheduler not found: `rrr` (l4vs has rr wrr)",
            "l4vs on /run/l4vs.sock: no answer within 10 s",
            "Dienst „web“ – café",
            "",
        ] {
            assert_eq!(printable(m), m);
        }
        let m = message(&["--bogus"]);
        assert!(
            m.starts_with("error: unexpected argument '--bogus' found\n"),
            "{m}"
        );
        assert!(m.contains("\nUsage: demo [OPTIONS]\n"), "{m}");
    }

    #[test]
    fn a_one_line_message_stays_one_line_and_prints() {
        assert_eq!(
            printable("cannot read a\nline 1: fake\u{1b}[2J\0\u{feff}\u{202e}"),
            "cannot read a\\nline 1: fake\\u{1b}[2J\\u{0}\\u{feff}\\u{202e}"
        );
    }

    #[test]
    fn clap_quotes_what_was_typed_as_a_config_error_does() {
        // A control character, a line break and a byte-order mark.
        let m = message(&["\u{feff}-A\u{7}\nerror: fake"]);
        assert!(
            m.starts_with("error: unexpected argument '\\u{feff}-A\\u{7}\\nerror: fake' found\n"),
            "{m}"
        );
        // A megabyte, with spaces in it, is cut once, inside clap's quotes.
        let long = "ab ".repeat(1 << 18);
        let m = message(&["-s", &long]);
        let cut = format!(
            "'{}… ({} bytes)'",
            clip(&long, MAX_ECHO_CHARS).0,
            long.len()
        );
        assert!(
            m.starts_with(&format!("error: invalid value {cut} for")),
            "{m}"
        );
        assert!(m.len() < 1000, "{m}");
        // A value that is a line break is replaced where clap quotes it,
        // not in clap's own line breaks.
        let m = message(&["\n"]);
        assert!(
            m.starts_with("error: unexpected argument '\\n' found\n"),
            "{m}"
        );
        assert!(m.contains("\nUsage: demo [OPTIONS]\n"), "{m}");
        // Values that print are left as they are, even when short ones
        // appear elsewhere in the text.
        let m = message(&["-s", "e"]);
        assert!(
            m.starts_with("error: invalid value 'e' for '-s <SCHEDULER>'"),
            "{m}"
        );
    }
}
