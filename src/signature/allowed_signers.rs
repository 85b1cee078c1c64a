//! git's allowed-signers file (the `ssh-keygen -Y` ALLOWED SIGNERS format):
//! `principals [options] keytype base64 [comment]`, with the options
//! `namespaces="…"`, `valid-after="…"`, `valid-before="…"` and `cert-authority`.

use std::path::{Path, PathBuf};

use ssh_key::PublicKey;

/// One line of the file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// Principal patterns (`*` and `?` wildcards), usually emails.
    pub principals: Vec<String>,
    pub namespaces: Option<Vec<String>>,
    /// Unix seconds; the key is valid from this time.
    pub valid_after: Option<i64>,
    /// Unix seconds; the key is not valid from this time on.
    pub valid_before: Option<i64>,
    pub cert_authority: bool,
    pub key: PublicKey,
    /// 1-based line in the file, for messages.
    pub line: usize,
}

/// The parsed file.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    pub path: PathBuf,
    pub entries: Vec<AllowedSigner>,
}

/// A problem on one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl AllowedSigners {
    /// Reads and parses the file; every bad line is reported.
    pub fn load(path: &Path) -> Result<AllowedSigners, Vec<LineError>> {
        let text = std::fs::read(path)
            .map_err(|e| vec![LineError { line: 0, column: 0, message: format!("cannot read {}: {e}", path.display()) }])?;
        let text = String::from_utf8_lossy(&text);
        let entries = parse(&text)?;
        Ok(AllowedSigners { path: path.to_path_buf(), entries })
    }

    /// Entries whose key is `key`.
    pub fn for_key<'a>(&'a self, key: &'a ssh_key::public::KeyData) -> impl Iterator<Item = &'a AllowedSigner> + 'a {
        self.entries.iter().filter(move |e| !e.cert_authority && e.key.key_data() == key)
    }
}

impl AllowedSigner {
    /// True when this line allows the `git` namespace (no `namespaces=` means all).
    pub fn allows_namespace(&self, ns: &str) -> bool {
        self.namespaces.as_ref().is_none_or(|list| list.iter().any(|n| glob_match(n, ns)))
    }

    /// True when any principal pattern matches `identity` (case-insensitive).
    pub fn matches_principal(&self, identity: &str) -> bool {
        identity_matches(identity, &self.principals)
    }
}

/// Parses the text of an allowed-signers file.
pub fn parse(text: &str) -> Result<Vec<AllowedSigner>, Vec<LineError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(trimmed, n) {
            Ok(e) => entries.push(e),
            Err(message) => {
                let column = line.len() - line.trim_start().len() + 1;
                errors.push(LineError { line: n, column, message })
            }
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

fn parse_line(line: &str, n: usize) -> Result<AllowedSigner, String> {
    let tokens = tokenize(line);
    if tokens.len() < 3 {
        return Err("expected `principals [options] keytype base64-key`".into());
    }
    let principals: Vec<String> = tokens[0].split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if principals.is_empty() {
        return Err("no principals before the key".into());
    }
    let (options, key_start) = if is_key_type(&tokens[1]) { (None, 1) } else { (Some(tokens[1].as_str()), 2) };
    if tokens.len() < key_start + 2 {
        return Err("expected a key type and base64 key after the options".into());
    }
    let key_text = format!("{} {}", tokens[key_start], tokens[key_start + 1]);
    let key = PublicKey::from_openssh(&key_text).map_err(|e| format!("cannot parse the public key `{}`: {e}", truncate(&key_text, 40)))?;
    let mut entry =
        AllowedSigner { principals, namespaces: None, valid_after: None, valid_before: None, cert_authority: false, key, line: n };
    if let Some(opts) = options {
        for opt in split_options(opts) {
            let (name, value) = match opt.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.trim_matches('"').to_string())),
                None => (opt.to_ascii_lowercase(), None),
            };
            match (name.as_str(), value) {
                ("cert-authority", None) => entry.cert_authority = true,
                ("namespaces", Some(v)) => entry.namespaces = Some(v.split(',').map(|s| s.trim().to_string()).collect()),
                ("valid-after", Some(v)) => entry.valid_after = Some(parse_time(&v)?),
                ("valid-before", Some(v)) => entry.valid_before = Some(parse_time(&v)?),
                (other, _) => {
                    return Err(format!(
                        "unknown option `{other}`; expected namespaces=\"…\", valid-after=\"…\", valid-before=\"…\" or cert-authority"
                    ))
                }
            }
        }
    }
    Ok(entry)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-")
}

/// Splits on whitespace, keeping double-quoted runs together (quotes kept).
fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        if ch == '"' {
            quoted = !quoted;
            cur.push(ch);
        } else if ch.is_whitespace() && !quoted {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(ch);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // A quoted principals list loses its quotes.
    if let Some(first) = out.first_mut() {
        *first = first.trim_matches('"').to_string();
    }
    out
}

/// Splits `a,b="x,y",c` on commas outside quotes.
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch)
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]` as ssh-keygen reads it. Times are taken as UTC
/// (ssh-keygen reads times without `Z` in the local zone; servers run in UTC).
pub fn parse_time(v: &str) -> Result<i64, String> {
    let digits = v.strip_suffix('Z').or_else(|| v.strip_suffix('z')).unwrap_or(v);
    let bad = || format!("bad time `{v}`; expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally ending in Z");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 8 | 12 | 14) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| digits[r].parse::<u32>().map_err(|_| bad());
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?).ok_or_else(bad)?;
    let (h, m, s) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0),
        _ => (num(8..10)?, num(10..12)?, num(12..14)?),
    };
    let dt = date.and_hms_opt(h, m, s).ok_or_else(bad)?;
    Ok(dt.and_utc().timestamp())
}

/// True when `identity` (an email, a principal) matches any of `patterns`:
/// case-insensitive, `*` and `?` wildcards. The one identity matcher: key
/// bindings, exemptions, allowed pushers and roles all use it.
pub fn identity_matches<'a>(identity: &str, patterns: impl IntoIterator<Item = &'a String>) -> bool {
    matching_identity(identity, patterns).is_some()
}

/// The first of `patterns` that `identity` matches (see [`identity_matches`]).
pub fn matching_identity<'a>(identity: &str, patterns: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    let id = identity.to_ascii_lowercase();
    patterns.into_iter().find(|p| glob_match(&p.to_ascii_lowercase(), &id))
}

/// `*` and `?` wildcards, as OpenSSH's match_pattern does.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtGgk7tphpNHsUGFzvvT56Xq2rDX+VFELe1EBh7uNG0";

    #[test]
    fn parses_plain_and_optioned_lines() {
        let text = format!(
            "# comment\n\nalice@example.com {KEY} alice\n\"bob@example.com,*@ops.example.com\" namespaces=\"git,file\",valid-after=\"20240101\",valid-before=\"20250101Z\" {KEY}\n"
        );
        let entries = parse(&text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].principals, vec!["alice@example.com"]);
        assert_eq!(entries[0].line, 3);
        assert!(entries[0].allows_namespace("git"));
        let b = &entries[1];
        assert_eq!(b.principals, vec!["bob@example.com", "*@ops.example.com"]);
        assert!(b.allows_namespace("git") && !b.allows_namespace("email"));
        assert_eq!(b.valid_after, Some(1704067200));
        assert_eq!(b.valid_before, Some(1735689600));
        assert!(b.matches_principal("Eve@OPS.example.com"));
        assert!(!b.matches_principal("eve@example.com"));
    }

    #[test]
    fn reports_every_bad_line() {
        let text = format!("alice@x {KEY}\nbroken\nbob@x valid-after=\"2024\" {KEY}\ncarol@x foo=1 {KEY}\n");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(errs[1].message.contains("bad time"), "{}", errs[1].message);
        assert!(errs[2].message.contains("unknown option `foo`"), "{}", errs[2].message);
        let errs = parse("dave@x ssh-ed25519 AAAAnotbase64!!\n").unwrap_err();
        assert!(errs[0].message.contains("cannot parse the public key"));
    }

    #[test]
    fn globbing() {
        assert!(glob_match("*@example.com", "a@example.com"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("x*", "yx"));
    }
}
