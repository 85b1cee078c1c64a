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
}

impl ParsedCommit {
    /// Parses a raw commit object. `sig_header` is [`SIG_HEADER_SHA1`] or
    /// [`SIG_HEADER_SHA256`]; both signature headers are removed from the payload,
    /// as git does, so a commit signed for both algorithms verifies under either.
    pub fn parse(raw: &[u8], sig_header: &str) -> ParsedCommit {
        let mut out = ParsedCommit::default();
        let mut payload = Vec::with_capacity(raw.len());
        let mut pos = 0;
        let mut in_sig = false; // inside a signature header's continuation lines
        let mut current_sig: Option<(bool, Vec<u8>)> = None; // (is ours, value)
        let mut body_start = raw.len();
        while pos < raw.len() {
            let end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
            let line = &raw[pos..end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            if content.is_empty() {
                // End of headers: the rest is the message, signed as is.
                finish_sig(&mut out, &mut current_sig);
                payload.extend_from_slice(&raw[pos..]);
                body_start = end;
                break;
            }
            if content[0] == b' ' {
                // Continuation of the previous header.
                if in_sig {
                    if let Some((_, value)) = current_sig.as_mut() {
                        value.push(b'\n');
                        value.extend_from_slice(&content[1..]);
                    }
                } else {
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
            match key {
                b"gpgsig" | b"gpgsig-sha256" => {
                    in_sig = true;
                    current_sig = Some((key == sig_header.as_bytes(), value.to_vec()));
                    pos = end;
                    continue; // not part of the payload
                }
                b"tree" => out.tree = Some(String::from_utf8_lossy(value).into_owned()),
                b"parent" => out.parents.push(String::from_utf8_lossy(value).into_owned()),
                b"author" => match Ident::parse(value) {
                    Some(i) => out.author = Some(i),
                    None => out.problems.push("malformed author line (no <email>)".into()),
                },
                b"committer" => match Ident::parse(value) {
                    Some(i) => out.committer = Some(i),
                    None => out.problems.push("malformed committer line (no <email>)".into()),
                },
                b"encoding" => out.encoding = Some(String::from_utf8_lossy(value).into_owned()),
                _ => {}
            }
            payload.extend_from_slice(line);
            pos = end;
        }
        finish_sig(&mut out, &mut current_sig);
        if body_start < raw.len() {
            out.message = raw[body_start..].to_vec();
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
