//! Parsing of raw commit objects.
//!
//! We read the commit bytes ourselves (instead of trusting a library's view) so
//! that the signed payload is exactly what the signer signed, non-UTF-8 names
//! and messages survive, and malformed objects give a verdict instead of a panic.

/// The header that carries a commit signature in a SHA-1 repository.
pub const SIG_HEADER_SHA1: &str = "gpgsig";
/// The header that carries a commit signature in a SHA-256 repository.
pub const SIG_HEADER_SHA256: &str = "gpgsig-sha256";

/// A name, email and time as git writes them in `author` and `committer` lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ident {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch; 0 when the line carries no parseable time.
    pub time: i64,
    /// Offset from UTC in minutes.
    pub offset_minutes: i32,
}

impl Ident {
    /// Parses `Name <email> 1700000000 +0100`. Returns `None` when there is no `<…>`.
    pub fn parse(raw: &[u8]) -> Option<Ident> {
        let lt = raw.iter().position(|&b| b == b'<')?;
        let gt = lt + raw[lt..].iter().position(|&b| b == b'>')?;
        let name = String::from_utf8_lossy(trim(&raw[..lt])).into_owned();
        let email = String::from_utf8_lossy(&raw[lt + 1..gt]).trim().to_string();
        let rest = String::from_utf8_lossy(&raw[gt + 1..]).into_owned();
        let mut parts = rest.split_whitespace();
        let time = parts.next().and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
        let offset_minutes = parts.next().and_then(parse_offset).unwrap_or(0);
        Some(Ident { name, email, time, offset_minutes })
    }

    /// What git's fsck would say is wrong with an identity line's date and
    /// zone: `Name <email> <seconds> <+hhmm>`, seconds in range, no padding.
    pub fn check(raw: &[u8]) -> Result<(), String> {
        let gt = raw.iter().position(|&b| b == b'>').ok_or("no `>` after the email")?;
        let rest = &raw[gt + 1..];
        let rest = rest.strip_prefix(b" ").ok_or("no space before the date")?;
        let mut parts = rest.split(|&b| b == b' ');
        let (Some(date), Some(zone), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("expected `<seconds> <zone>` after the email".into());
        };
        let date_text = String::from_utf8_lossy(date);
        if date.is_empty() || !date.iter().all(u8::is_ascii_digit) {
            return Err(format!("the date `{date_text}` is not a number of seconds"));
        }
        if date.len() > 1 && date[0] == b'0' {
            return Err(format!("the date `{date_text}` is zero-padded"));
        }
        if date_text.parse::<i64>().is_err() {
            return Err(format!("the date `{date_text}` is out of range"));
        }
        if parse_offset(&String::from_utf8_lossy(zone)).is_none() {
            return Err(format!("the zone `{}` is not +hhmm or -hhmm", String::from_utf8_lossy(zone)));
        }
        Ok(())
    }

    /// `Name <email>`.
    pub fn display(&self) -> String {
        format!("{} <{}>", self.name, self.email)
    }
}

fn parse_offset(s: &str) -> Option<i32> {
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    Some(sign * (hours * 60 + minutes))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

/// A commit object split into the parts the checks need.
#[derive(Debug, Clone, Default)]
pub struct ParsedCommit {
    pub tree: Option<String>,
    pub parents: Vec<String>,
    pub author: Option<Ident>,
    pub committer: Option<Ident>,
    /// The `encoding` header, if the message is not UTF-8 by declaration.
    pub encoding: Option<String>,
    /// The raw message bytes (everything after the blank line).
    pub message: Vec<u8>,
    /// The signature for this repository's hash algorithm, continuation lines joined.
    pub signature: Option<Vec<u8>>,
    /// The object without any signature header: what the signer signed.
    pub payload: Vec<u8>,
    /// Problems found while parsing (missing author, malformed header …).
    pub problems: Vec<String>,
    /// More than one signature header of this repository's kind: git reports
    /// such a commit's signature as `E`, and so do we (status `error`).
    pub duplicate_signature: bool,
}

/// Where the header parser is in git's fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Start,
    /// After `tree` (and any `parent` lines).
    Tree,
    Author,
    /// After `committer`: other headers may follow.
    Extra,
    /// Something was out of order; the rest is read but no more parents taken.
    Broken,
}

fn is_object_id(v: &[u8]) -> bool {
    (v.len() == 40 || v.len() == 64) && v.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl ParsedCommit {
    /// Parses a raw commit object the way git reads it. `sig_header` is
    /// [`SIG_HEADER_SHA1`] or [`SIG_HEADER_SHA256`]; both signature headers are
    /// removed from the payload, as git does, so a commit signed for both
    /// algorithms verifies under either.
    ///
    /// Parents are only the `parent` lines directly after `tree`, as in git's
    /// `parse_commit_buffer` and libgit2: a `parent` line anywhere else is ignored
    /// by git, so it is ignored here too (and reported). Anything git's own tools
    /// would not write — headers out of git's order, a repeated core or signature
    /// header, a bad date or zone, a NUL in the headers — is a problem, which the
    /// checks report as `commits.malformed`.
    pub fn parse(raw: &[u8], sig_header: &str) -> ParsedCommit {
        let mut out = ParsedCommit::default();
        let mut payload = Vec::with_capacity(raw.len());
        let mut pos = 0;
        let mut in_sig = false; // inside a signature header's continuation lines
        let mut current_sig: Option<(bool, Vec<u8>)> = None; // (is ours, value)
        let mut body_start = None;
        let mut order = Order::Start;
        let mut seen_sig = [false, false]; // gpgsig, gpgsig-sha256
        let mut line_no = 0usize;
        while pos < raw.len() {
            let end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
            let line = &raw[pos..end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            line_no += 1;
            if content.is_empty() {
                // End of headers: the rest is the message, signed as is.
                finish_sig(&mut out, &mut current_sig);
                payload.extend_from_slice(&raw[pos..]);
                body_start = Some(end);
                break;
            }
            if content.contains(&0) {
                out.problems.push(format!("header line {line_no} contains a NUL byte"));
            }
            if content[0] == b' ' {
                // Continuation of the previous header.
                if in_sig {
                    if let Some((_, value)) = current_sig.as_mut() {
                        value.push(b'\n');
                        value.extend_from_slice(&content[1..]);
                    }
                } else {
                    if order == Order::Start {
                        out.problems.push("the object starts with a continuation line, not a tree header".into());
                        order = Order::Broken;
                    }
                    payload.extend_from_slice(line);
                }
                pos = end;
                continue;
            }
            finish_sig(&mut out, &mut current_sig);
            in_sig = false;
            let (key, value) = match content.iter().position(|&b| b == b' ') {
                Some(i) => (&content[..i], &content[i + 1..]),
                None => (content, &content[content.len()..]),
            };
            let name = String::from_utf8_lossy(key).into_owned();
            // git's order: tree, parent*, author, committer, then anything else.
            let expected = match (order, key) {
                (Order::Start, b"tree") => Some(Order::Tree),
                (Order::Tree, b"parent") => Some(Order::Tree),
                (Order::Tree, b"author") => Some(Order::Author),
                (Order::Author, b"committer") => Some(Order::Extra),
                (Order::Extra | Order::Broken, k) if !matches!(k, b"tree" | b"parent" | b"author" | b"committer") => Some(order),
                _ => None,
            };
            match expected {
                Some(next) => order = next,
                None => {
                    let why = match (order, key) {
                        (Order::Start, _) => "the first header must be `tree`".to_string(),
                        (_, b"parent") => "git ignores a `parent` line that does not directly follow `tree` (or another `parent`)".into(),
                        (_, b"tree" | b"author" | b"committer") => format!("`{name}` appears twice or out of git's order"),
                        (Order::Tree, _) => "expected `parent` or `author` after `tree`".into(),
                        _ => "expected `committer` after `author`".into(),
                    };
                    out.problems.push(format!("header `{name}` on line {line_no} is out of place: {why}"));
                    order = Order::Broken;
                }
            }
            match key {
                b"gpgsig" | b"gpgsig-sha256" => {
                    let slot = usize::from(key == b"gpgsig-sha256");
                    let ours = key == sig_header.as_bytes();
                    if seen_sig[slot] {
                        out.problems.push(format!("more than one `{name}` header (git reports such a signature as E)"));
                        if ours {
                            out.duplicate_signature = true;
                        }
                    }
                    seen_sig[slot] = true;
                    in_sig = true;
                    current_sig = Some((ours, value.to_vec()));
                    pos = end;
                    continue; // not part of the payload
                }
                b"tree" if out.tree.is_none() => {
                    if !is_object_id(value) {
                        out.problems.push("the tree header does not name an object id".into());
                    }
                    out.tree = Some(String::from_utf8_lossy(value).into_owned());
                }
                b"parent" if expected.is_some() => {
                    if !is_object_id(value) {
                        out.problems.push(format!("parent on line {line_no} is not an object id"));
                    }
                    out.parents.push(String::from_utf8_lossy(value).into_owned());
                }
                b"author" | b"committer" => {
                    let slot = if key == b"author" { &mut out.author } else { &mut out.committer };
                    if slot.is_none() {
                        match Ident::parse(value) {
                            Some(i) => {
                                if let Err(why) = Ident::check(value) {
                                    out.problems.push(format!("malformed {name} line: {why}"));
                                }
                                *slot = Some(i);
                            }
                            None => out.problems.push(format!("malformed {name} line (no <email>)")),
                        }
                    }
                }
                b"encoding" => {
                    if out.encoding.is_some() {
                        out.problems.push("more than one `encoding` header".into());
                    } else {
                        out.encoding = Some(String::from_utf8_lossy(value).into_owned());
                    }
                }
                _ => {}
            }
            payload.extend_from_slice(line);
            pos = end;
        }
        finish_sig(&mut out, &mut current_sig);
        match body_start {
            Some(start) => out.message = raw[start..].to_vec(),
            None if !raw.is_empty() => out.problems.push("the headers are not followed by a blank line".into()),
            None => {}
        }
        if out.tree.is_none() {
            out.problems.push("no tree header".into());
        }
        if out.author.is_none() && !out.problems.iter().any(|p| p.contains("author")) {
            out.problems.push("no author header".into());
        }
        if out.committer.is_none() && !out.problems.iter().any(|p| p.contains("committer")) {
            out.problems.push("no committer header".into());
        }
        out.payload = payload;
        out
    }

    /// The message decoded for display and rule checks (lossy for non-UTF-8).
    pub fn message_text(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }

    /// The first line of the message.
    pub fn subject(&self) -> String {
        let text = self.message_text();
        let trimmed = text.trim_start_matches('\n');
        trimmed.lines().next().unwrap_or("").trim_end().to_string()
    }
}

fn finish_sig(out: &mut ParsedCommit, current: &mut Option<(bool, Vec<u8>)>) {
    if let Some((ours, mut value)) = current.take() {
        if ours && out.signature.is_none() {
            if !value.ends_with(b"\n") {
                value.push(b'\n');
            }
            out.signature = Some(value);
        }
    }
}

/// The date an object header line (`tagger`, `pusher`) carries, in Unix seconds; 0 without one.
/// The line ends in `<seconds> <zone>` (a push certificate signed with SSH names
/// a key, not `Name <email>`, before them).
pub fn header_time(payload: &[u8], key: &str) -> i64 {
    let prefix = format!("{key} ");
    let Some(value) = payload.split(|&b| b == b'\n').take_while(|l| !l.is_empty()).find_map(|l| l.strip_prefix(prefix.as_bytes())) else {
        return 0;
    };
    let text = String::from_utf8_lossy(value);
    let mut words = text.split_whitespace().rev();
    let (_zone, seconds) = (words.next(), words.next());
    seconds.and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
parent 1111111111111111111111111111111111111111\n\
author Alice <alice@example.com> 1700000000 +0100\n\
committer Alice <alice@example.com> 1700000001 -0230\n\
gpgsig -----BEGIN PGP SIGNATURE-----\n \n iHUEABYKAB0WIQ\n -----END PGP SIGNATURE-----\n\
\n\
feat: hello\n\nbody\n";

    #[test]
    fn splits_signature_from_payload() {
        let c = ParsedCommit::parse(SIGNED, SIG_HEADER_SHA1);
        assert_eq!(c.signature.as_deref(), Some(&b"-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQ\n-----END PGP SIGNATURE-----\n"[..]));
        let expected_payload = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
parent 1111111111111111111111111111111111111111\n\
author Alice <alice@example.com> 1700000000 +0100\n\
committer Alice <alice@example.com> 1700000001 -0230\n\
\n\
feat: hello\n\nbody\n";
        assert_eq!(c.payload, expected_payload.to_vec());
        assert_eq!(c.subject(), "feat: hello");
        assert_eq!(c.parents.len(), 1);
        let committer = c.committer.unwrap();
        assert_eq!(committer.time, 1700000001);
        assert_eq!(committer.offset_minutes, -150);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn sha256_header_is_taken_only_in_sha256_mode() {
        let raw = b"tree aa\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\ngpgsig-sha256 SIG\n\nm\n";
        let sha1 = ParsedCommit::parse(raw, SIG_HEADER_SHA1);
        assert!(sha1.signature.is_none());
        assert_eq!(sha1.payload, b"tree aa\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nm\n".to_vec());
        let sha256 = ParsedCommit::parse(raw, SIG_HEADER_SHA256);
        assert_eq!(sha256.signature.as_deref(), Some(&b"SIG\n"[..]));
    }

    #[test]
    fn tolerates_garbage_and_non_utf8() {
        let raw = b"tree aa\nauthor \xff\xfe <\xff@x> notatime\ncommitter nobody\n\n\xff subject\n";
        let c = ParsedCommit::parse(raw, SIG_HEADER_SHA1);
        let author = c.author.clone().unwrap();
        assert_eq!(author.time, 0);
        assert!(author.email.ends_with("@x"));
        assert!(c.committer.is_none());
        assert!(c.problems.iter().any(|p| p.contains("committer")));
        assert!(c.subject().ends_with("subject"));
        // Empty input and a header-only object do not panic.
        let empty = ParsedCommit::parse(b"", SIG_HEADER_SHA1);
        assert!(!empty.problems.is_empty());
        let headers_only = ParsedCommit::parse(b"tree aa\ngpgsig x", SIG_HEADER_SHA1);
        assert_eq!(headers_only.signature.as_deref(), Some(&b"x\n"[..]));
    }

    #[test]
    fn mergetag_continuations_stay_in_payload() {
        let raw =
            b"tree aa\nparent p1\nparent p2\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\nmergetag object x\n type commit\n\nMerge\n";
        let c = ParsedCommit::parse(raw, SIG_HEADER_SHA1);
        assert_eq!(c.payload, raw.to_vec());
        assert_eq!(c.parents, vec!["p1", "p2"]);
    }
}
