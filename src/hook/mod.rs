//! The git hooks: `pre-receive`/`post-receive` on a server, `pre-push` and
//! `commit-msg` on a developer's machine. Each reads what git hands it, builds
//! [`RefUpdate`]s, and asks the checks for a decision.

pub mod decide;
pub mod flow;
pub mod identity;
pub mod message;
pub mod notice;
pub mod record;

pub use crate::git::{is_zero, RefUpdate};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line} of the hook's input: {message}: `{text}`")]
pub struct InputError {
    pub line: usize,
    pub message: String,
    pub text: String,
}

fn valid_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses pre-receive/post-receive input: `<old> <new> <ref>` per line.
pub fn parse_receive(input: &str) -> Result<Vec<RefUpdate>, InputError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let err = |m: &str| InputError { line: i + 1, message: m.into(), text: line.into() };
        let mut parts = line.splitn(3, ' ');
        let (Some(old), Some(new), Some(refname)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err("expected `<old> <new> <ref>`"));
        };
        if !valid_id(old) || !valid_id(new) || old.len() != new.len() {
            return Err(err("expected two object ids of the same length"));
        }
        if refname.is_empty() {
            return Err(err("no ref name"));
        }
        out.push(RefUpdate { refname: refname.into(), old: old.into(), new: new.into() });
    }
    Ok(out)
}

/// Parses pre-push input: `<local ref> <local id> <remote ref> <remote id>` per
/// line. The result speaks of the remote: `old` is what it has, `new` what we send.
pub fn parse_pre_push(input: &str) -> Result<Vec<RefUpdate>, InputError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let err = |m: &str| InputError { line: i + 1, message: m.into(), text: line.into() };
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() != 4 {
            return Err(err("expected `<local ref> <local id> <remote ref> <remote id>`"));
        }
        if !valid_id(parts[1]) || !valid_id(parts[3]) {
            return Err(err("expected object ids"));
        }
        out.push(RefUpdate { refname: parts[2].into(), old: parts[3].into(), new: parts[1].into() });
    }
    Ok(out)
}

/// Push options (`git push -o …`), from `GIT_PUSH_OPTION_COUNT` and `GIT_PUSH_OPTION_<n>`.
pub fn push_options(env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let n: usize = env("GIT_PUSH_OPTION_COUNT").and_then(|v| v.parse().ok()).unwrap_or(0);
    (0..n.min(1000)).filter_map(|i| env(&format!("GIT_PUSH_OPTION_{i}"))).collect()
}

/// The reason given with `-o audit.bypass=<reason>`, if any.
pub fn bypass_reason(options: &[String]) -> Option<String> {
    options.iter().find_map(|o| o.strip_prefix("audit.bypass=").map(|r| r.trim().trim_matches('"').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn parses_receive_lines_and_zero_ids() {
        let u = parse_receive(&format!("{Z} {A} refs/heads/main\n{A} {Z} refs/tags/v1\n")).unwrap_or_default();
        assert_eq!(u.len(), 2);
        assert!(u[0].is_create() && !u[0].is_delete());
        assert!(u[1].is_delete());
        let z256 = "0".repeat(64);
        let a256 = "a".repeat(64);
        let u = parse_receive(&format!("{z256} {a256} refs/heads/x y\n")).unwrap_or_default();
        assert_eq!(u[0].refname, "refs/heads/x y");
        assert!(u[0].is_create());
        assert!(is_zero(&z256) && !is_zero("000") && !is_zero(A));
    }

    #[test]
    fn bad_input_names_the_line() {
        let e = parse_receive(&format!("{Z} {A} refs/heads/main\nnonsense\n")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_receive(&format!("{Z} {} refs/heads/x\n", "a".repeat(64))).is_err());
        assert!(parse_pre_push("refs/heads/main abc refs/heads/main def\n").is_err());
    }

    #[test]
    fn pre_push_speaks_of_the_remote() {
        let u = parse_pre_push(&format!("refs/heads/topic {A} refs/heads/main {Z}\n")).unwrap_or_default();
        assert_eq!(u[0], RefUpdate { refname: "refs/heads/main".into(), old: Z.into(), new: A.into() });
    }

    #[test]
    fn push_options_and_bypass() {
        let env = |k: &str| match k {
            "GIT_PUSH_OPTION_COUNT" => Some("2".to_string()),
            "GIT_PUSH_OPTION_0" => Some("ci.skip".to_string()),
            "GIT_PUSH_OPTION_1" => Some("audit.bypass=prod is down, INC-42".to_string()),
            _ => None,
        };
        let opts = push_options(&env);
        assert_eq!(bypass_reason(&opts).as_deref(), Some("prod is down, INC-42"));
        assert_eq!(bypass_reason(&[]), None);
    }
}
