//! Text from viewers (comments, names, ids) goes into log lines through [`Esc`], which writes
//! control characters escaped: a comment cannot forge a log line with a newline or repaint an
//! operator's terminal with ANSI escapes. Everything else is written as is.

use std::fmt;

/// Displays its text with control characters escaped (`\n`, `\u{1b}`).
#[derive(Debug, Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            // Bidirectional overrides reorder what the reader sees: escaped too.
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_fmt(format_args!("{c}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let cases = [
            ("上次买的有裂", "上次买的有裂"),
            ("a\nfake=line", "a\\nfake=line"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("tab\there\r", "tab\\there\\r"),
            ("\u{202e}txt", "\\u{202e}txt"),
        ];
        for (raw, want) in cases {
            assert_eq!(Esc(raw).to_string(), want);
        }
    }
}
