//! Text from agents made safe to show: a terminal's escape sequences and control characters
//! removed (the CLI before printing, the dashboard's last line of activity).

use std::iter::Peekable;
use std::str::Chars;

/// Text made safe for a terminal: escape sequences (CSI `ESC[…`, OSC `ESC]…`, DCS/SOS/PM/APC
/// strings, two-byte `ESC x`, and their 8-bit C1 forms) are removed whole; every other C0/C1
/// control character and DEL is dropped except newline and tab; bidirectional overrides (which
/// make text read differently than it is) are dropped too. Printable text is kept as is.
pub fn clean(s: &str) -> String {
    if !s.chars().any(needs_cleaning) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\u{1b}' => skip_escape(&mut it),
            '\u{9b}' => skip_csi(&mut it),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut it),
            c if needs_cleaning(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn needs_cleaning(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// After ESC: the rest of one escape sequence.
fn skip_escape(it: &mut Peekable<Chars>) {
    match it.peek().copied() {
        Some('[') => {
            it.next();
            skip_csi(it);
        }
        Some(']' | 'P' | 'X' | '^' | '_') => {
            it.next();
            skip_string(it);
        }
        // nF sequences: intermediates (0x20–0x2F), then one final character.
        Some(' '..='/') => {
            while it.next_if(|c| (' '..='/').contains(c)).is_some() {}
            it.next_if(|c| ('0'..='~').contains(c));
        }
        // Two-character sequences (ESC 7, ESC c, …).
        Some('0'..='~') => {
            it.next();
        }
        _ => {}
    }
}

/// A CSI's parameters and intermediates (0x20–0x3F), then its final character (0x40–0x7E).
fn skip_csi(it: &mut Peekable<Chars>) {
    while it.next_if(|c| (' '..='?').contains(c)).is_some() {}
    it.next_if(|c| ('@'..='~').contains(c));
}

/// An OSC/DCS/… string: up to BEL, ST (`ESC \` or 0x9C), or the end of the line.
fn skip_string(it: &mut Peekable<Chars>) {
    while let Some(&c) = it.peek() {
        match c {
            '\n' => return,
            '\u{7}' | '\u{9c}' => {
                it.next();
                return;
            }
            '\u{1b}' => {
                it.next();
                it.next_if_eq(&'\\');
                return;
            }
            _ => {
                it.next();
            }
        }
    }
}
