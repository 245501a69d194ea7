//! Cutting text to a budget: one rule for the daemon's stored excerpts (bytes), the CLI's
//! columns (characters) and the claude-bg follower's error messages.

/// How much of a text to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// At most this many bytes (stored and sent text: a size budget).
    Bytes(usize),
    /// At most this many characters (text for people).
    Chars(usize),
}

/// The longest prefix of `s` within `limit`, never cutting a character in two.
pub fn prefix(s: &str, limit: Limit) -> &str {
    let end = match limit {
        Limit::Bytes(max) if s.len() <= max => return s,
        Limit::Bytes(max) => {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            end
        }
        Limit::Chars(max) => match s.char_indices().nth(max) {
            Some((end, _)) => end,
            None => return s,
        },
    };
    &s[..end]
}

/// `s` within `limit`, with `…` appended where it was cut (the marker is not counted).
pub fn excerpt(s: &str, limit: Limit) -> String {
    let kept = prefix(s, limit);
    if kept.len() == s.len() {
        s.to_string()
    } else {
        format!("{kept}…")
    }
}

/// Bytes for people: `256 MiB`, `1.5 GiB`, `512 KiB`, `100 B`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{} {unit}", v.round())
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::{bytes, excerpt, prefix, Limit};

    #[test]
    fn text_within_the_limit_is_kept_whole() {
        for limit in [Limit::Bytes(5), Limit::Chars(5)] {
            assert_eq!(excerpt("hello", limit), "hello");
            assert_eq!(excerpt("", limit), "");
        }
        assert_eq!(excerpt("日本", Limit::Chars(2)), "日本");
        assert_eq!(excerpt("日本", Limit::Bytes(6)), "日本");
    }

    #[test]
    fn a_cut_is_marked_and_counts_its_unit() {
        assert_eq!(excerpt("hello world", Limit::Bytes(5)), "hello…");
        assert_eq!(excerpt("hello world", Limit::Chars(5)), "hello…");
        // Three bytes a character: 4 characters are 12 bytes.
        assert_eq!(excerpt("日本語の文章", Limit::Chars(4)), "日本語の…");
        assert_eq!(excerpt("日本語の文章", Limit::Bytes(12)), "日本語の…");
        assert_eq!(excerpt("a", Limit::Chars(0)), "…");
    }

    #[test]
    fn a_byte_cut_never_splits_a_character() {
        // "é" is 2 bytes, "日" 3, "🦀" 4: every budget inside one backs off to its start.
        let s = "é日🦀x";
        let want = [
            "",
            "",
            "é",
            "é",
            "é",
            "é日",
            "é日",
            "é日",
            "é日",
            "é日🦀",
            "é日🦀x",
        ];
        for (max, want) in want.iter().enumerate() {
            assert_eq!(prefix(s, Limit::Bytes(max)), *want, "{max} bytes");
        }
    }

    #[test]
    fn a_char_cut_keeps_whole_wide_characters_and_emoji() {
        let s = "🦀蟹 crab";
        assert_eq!(prefix(s, Limit::Chars(1)), "🦀");
        assert_eq!(prefix(s, Limit::Chars(2)), "🦀蟹");
        assert_eq!(excerpt(s, Limit::Chars(3)), "🦀蟹 …");
        assert_eq!(prefix(s, Limit::Chars(100)), s);
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(bytes(67_000_000), "63.9 MiB");
    }
}
