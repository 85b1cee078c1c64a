//! Text that came from someone else, made safe to show.
//!
//! Reports print what pushers, forges and CI jobs wrote: break-glass reasons,
//! pull request titles, actor names. Raw, a control character in them acts on
//! the reader's terminal (ESC starts a sequence that can clear the screen,
//! retitle the window or hide lines; BEL rings; CR overwrites), and a bidi
//! override reorders what the reader sees (Trojan Source, CVE-2021-42574).
//! Every text format shows them as visible escapes instead; JSON keeps the
//! exact value with `\u` escapes; CSV cells that a spreadsheet would run as
//! a formula are neutralised as OWASP recommends.

use std::borrow::Cow;

/// True for what must never reach a reader raw: C0 controls, DEL, C1
/// controls, and the Unicode controls that reorder or hide text (bidi
/// embeddings, overrides and isolates; the line and paragraph separators).
pub fn is_unsafe(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character as a visible escape: `\n`, `\t`, `\r`,
/// `\x1b` (other C0 and DEL), `\u{9b}` (C1 and Unicode controls). Escaping
/// is idempotent (a backslash is left as it is), so text already made
/// visible passes unchanged.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && is_unsafe(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text with the unsafe characters serde_json leaves raw (DEL, C1, the
/// Unicode controls) written as `\u` escapes: the same JSON value, safe for a
/// terminal. (serde_json already escapes C0.) Only valid inside strings,
/// which is the only place JSON allows such characters.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    // Everything below DEL is safe here: a byte scan settles ASCII output
    // (nearly all of it) without decoding characters.
    if json.bytes().all(|b| b < 0x7f) || !json.chars().any(is_unsafe_in_json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe_in_json(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_unsafe_in_json(c: char) -> bool {
    // Newlines and indentation are JSON's own layout; serde escapes every C0
    // inside strings.
    is_unsafe(c) && (c as u32) >= 0x7f
}

/// A CSV cell's text as a spreadsheet should read it: a cell starting with
/// `=`, `+`, `-`, `@`, tab or CR would be run as a formula (`=HYPERLINK(…)`),
/// so it is prefixed with `'`, which spreadsheets show as text (OWASP, "CSV
/// Injection"). Numbers keep their sign: `-3` and `-0.5` are data.
pub fn csv_neutral(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(visible("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(visible("a\x1b[2Jb\x07c"), "a\\x1b[2Jb\\x07c");
        assert_eq!(visible("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(visible("\u{7f}\u{9b}31m"), "\\x7f\\u{9b}31m");
        assert_eq!(visible("admin\u{202e}gnp.exe"), "admin\\u{202e}gnp.exe");
        let once = visible("a\x1bb").into_owned();
        assert_eq!(visible(&once), once, "idempotent");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(!visible(&c.to_string()).chars().any(is_unsafe), "{c:?}");
        }
    }

    #[test]
    fn json_keeps_the_value() {
        let v = serde_json::json!({"t": "a\u{9b}b\u{7f}c\u{202e}d\u{1b}e"});
        let text = json_safe(&serde_json::to_string_pretty(&v).unwrap_or_default()).into_owned();
        assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text:?}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, v);
        // DEL itself is the first byte the fast path hands to the full check.
        assert_eq!(json_safe("{\"t\":\"a\u{7f}\"}"), "{\"t\":\"a\\u007f\"}");
        assert!(matches!(json_safe("{\"plain\": \"ascii ~\"}"), Cow::Borrowed(_)));
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd", "-2+3", "@SUM(A1)", "\t=1", "\r=1"] {
            assert!(csv_neutral(bad).starts_with('\''), "{bad}");
        }
        for ok in ["fine", "-3", "-0.5", "+7", "a=b", ""] {
            assert_eq!(csv_neutral(ok), ok);
        }
    }
}
