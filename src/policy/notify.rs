//! `[[notify]]`: where git-audit tells people what happened (a signed webhook,
//! a Slack channel, a Teams channel), and which events go there.
//!
//! The policy names *where the secrets are* (an environment variable or a
//! file), never the secrets themselves, except a literal `url`, which
//! `policy check` warns about: a webhook URL is a credential.

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::Validator;
use crate::rule::Rule;

/// The events a sink can select (`finding.<rule>` for every compliance rule id).
pub const EVENTS: &[&str] =
    &["push.refused", "bypass.used", "policy.changed", "deployment.failed", "ledger.gap", "ledger.verify-failed", "notify.test", "digest"];

/// Every event type a sink may name: [`EVENTS`], `finding.<rule id>`, and
/// `anomaly.<kind>` (an anomaly's rule id).
pub fn event_types() -> Vec<String> {
    EVENTS.iter().map(|e| e.to_string()).chain(Rule::ALL.iter().map(|r| r.event())).collect()
}

/// The kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Webhook,
    Slack,
    Teams,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Teams => "teams",
        }
    }
}

/// Where a secret value (a URL, a signing secret) is read from, at delivery time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the policy (allowed for URLs, with a warning).
    Literal(String),
    /// An environment variable's name.
    Env(String),
    /// A file (resolved against the policy's folder); surrounding whitespace is trimmed.
    File(PathBuf),
}

impl SecretSource {
    /// The value, or an error that names where it was looked for (never the value).
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretSource::Literal(v) => Ok(v.clone()),
            SecretSource::Env(name) => std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {name} is not set")),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|v| v.trim().to_string())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|v| if v.is_empty() { Err(format!("{} is empty", path.display())) } else { Ok(v) }),
        }
    }

    /// Where it is, for messages (`env NAME`, `file PATH`, `the policy`).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Literal(_) => "the policy".into(),
            SecretSource::Env(n) => format!("environment variable {n}"),
            SecretSource::File(p) => format!("file {}", p.display()),
        }
    }
}

/// One `[[notify]]` entry, checked.
#[derive(Debug, Clone)]
pub struct Sink {
    /// `name`, or `<kind>` (`<kind>-<n>` when several share a kind): the key
    /// its outbox rows and its enabled state are kept under.
    pub name: String,
    pub kind: SinkKind,
    pub url: SecretSource,
    /// The Standard Webhooks secret (`whsec_<base64>`), webhook sinks only.
    pub secret: Option<SecretSource>,
    /// Also send GitHub's `X-Hub-Signature-256` (keyed with the secret text as written).
    pub github_signature: bool,
    /// The event globs as written.
    pub events: Vec<String>,
    matchers: Vec<globset::GlobMatcher>,
}

impl Sink {
    /// This sink, selecting every event (for a send the user asked for by name).
    pub fn wanting_everything(mut self) -> Sink {
        self.events = vec!["*".into()];
        self.matchers = globset::Glob::new("*").map(|g| vec![g.compile_matcher()]).unwrap_or_default();
        self
    }

    /// Does this sink want events of type `event`?
    pub fn wants(&self, event: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(event))
    }
}

/// `[[notify]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub kind: Spanned<SinkKind>,
    pub name: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    #[serde(default)]
    pub github_signature: bool,
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
}

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: Vec<RawNotify>) -> Vec<Sink> {
        let known = event_types();
        let mut sinks = Vec::new();
        let mut per_kind: std::collections::BTreeMap<SinkKind, usize> = Default::default();
        for n in &raw {
            *per_kind.entry(*n.kind.get_ref()).or_default() += 1;
        }
        let mut seen_kind: std::collections::BTreeMap<SinkKind, usize> = Default::default();
        let mut names: Vec<String> = Vec::new();
        for n in raw {
            let kind = *n.kind.get_ref();
            let kind_span = n.kind.span();
            let index = {
                let i = seen_kind.entry(kind).or_default();
                *i += 1;
                *i
            };
            let name = match &n.name {
                Some(s) => {
                    let v = s.get_ref();
                    if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                        self.err(
                            s.span(),
                            format!("notify name `{v}` must be letters, digits, `-`, `_` or `.`"),
                            Some("e.g. name = \"siem\""),
                        );
                    }
                    v.clone()
                }
                None if per_kind.get(&kind).copied().unwrap_or(0) > 1 => format!("{}-{index}", kind.as_str()),
                None => kind.as_str().to_string(),
            };
            if names.contains(&name) {
                let span = n.name.as_ref().map_or(kind_span.clone(), |s| s.span());
                self.err(span, format!("two [[notify]] sinks are named `{name}`"), Some("give each a distinct name = \"…\""));
            }
            names.push(name.clone());

            let url = self.secret_source(
                "url",
                kind_span.clone(),
                n.url.as_ref().map(|u| (u.get_ref().clone(), u.span())),
                n.url_env.as_ref(),
                n.url_file.as_ref(),
            );
            if let (Some(SecretSource::Literal(u)), Some(span)) = (&url, n.url.as_ref().map(|u| u.span())) {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    self.err(span.clone(), "the url must start with https:// or http://".into(), None);
                } else {
                    self.warn(
                        span,
                        format!("the [[notify]] `{name}` webhook URL is written in the policy; whoever reads the policy can post to it"),
                        "keep it out of the repository: url_env = \"NAME\" or url_file = \"PATH\"",
                    );
                }
            }
            let secret = self.secret_source("secret", kind_span.clone(), None, n.secret_env.as_ref(), n.secret_file.as_ref());
            match kind {
                SinkKind::Webhook if secret.is_none() && !self.has_error_at(&kind_span) => self.err(
                    kind_span.clone(),
                    format!("the webhook sink `{name}` has no signing secret"),
                    Some("add secret_file = \"PATH\" or secret_env = \"NAME\" holding a Standard Webhooks secret (whsec_<base64>); generate one with `echo whsec_$(head -c 32 /dev/urandom | base64)`"),
                ),
                SinkKind::Slack | SinkKind::Teams if secret.is_some() => {
                    let span = n.secret_env.as_ref().map(|s| s.span()).or(n.secret_file.as_ref().map(|s| s.span())).unwrap_or(kind_span.clone());
                    self.err(span, format!("{} sinks are not signed: their URL is the credential", kind.as_str()), Some("remove secret_env / secret_file"));
                }
                _ => {}
            }
            if n.github_signature && kind != SinkKind::Webhook {
                self.err(kind_span.clone(), "github_signature applies to webhook sinks only".into(), None);
            }

            let mut events = Vec::new();
            let mut matchers = Vec::new();
            match &n.events {
                None => {
                    events.push("*".to_string());
                    matchers.extend(globset::Glob::new("*").ok().map(|g| g.compile_matcher()));
                }
                Some(list) if list.get_ref().is_empty() => {
                    self.err(
                        list.span(),
                        format!("the sink `{name}` selects no events"),
                        Some(&format!("e.g. events = [\"push.refused\", \"bypass.used\", \"finding.*\"]; known: {}", EVENTS.join(", "))),
                    );
                }
                Some(list) => {
                    for e in list.get_ref() {
                        match globset::GlobBuilder::new(e.get_ref()).literal_separator(false).build() {
                            Ok(g) => {
                                let m = g.compile_matcher();
                                if !known.iter().any(|k| m.is_match(k)) {
                                    self.err(
                                        e.span(),
                                        format!("`{}` matches no event", e.get_ref()),
                                        Some(&format!("events are {}, and finding.<rule id> (e.g. \"finding.*\")", EVENTS.join(", "))),
                                    );
                                }
                                matchers.push(m);
                                events.push(e.get_ref().clone());
                            }
                            Err(err) => self.err(e.span(), format!("bad event pattern: {}", err.kind()), Some("e.g. \"finding.*\"")),
                        }
                    }
                }
            }
            if let Some(url) = url {
                sinks.push(Sink { name, kind, url, secret, github_signature: n.github_signature, events, matchers });
            }
        }
        sinks
    }

    fn has_error_at(&self, span: &Range<usize>) -> bool {
        let (line, column) = super::line_col(self.text.as_bytes(), span.start);
        self.diags.iter().any(|d| d.line == line && d.column == column)
    }

    fn warn(&mut self, span: Range<usize>, message: String, hint: &str) {
        self.warnings.push(super::diag_at(self.path, self.text.as_bytes(), span, message, Some(hint.to_string())));
    }

    /// Exactly one of `<what>`, `<what>_env`, `<what>_file` (none is fine for a secret).
    fn secret_source(
        &mut self,
        what: &str,
        entry: Range<usize>,
        literal: Option<(String, Range<usize>)>,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
    ) -> Option<SecretSource> {
        let given = literal.is_some() as usize + env.is_some() as usize + file.is_some() as usize;
        if given > 1 {
            let span = env.map(|e| e.span()).or(file.map(|f| f.span())).unwrap_or(entry);
            self.err(span, format!("give only one of {what}, {what}_env and {what}_file"), None);
            return None;
        }
        if let Some(e) = env {
            if e.get_ref().is_empty() || !e.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.err(
                    e.span(),
                    format!("{what}_env must name an environment variable, not `{}`", e.get_ref()),
                    Some("e.g. \"SLACK_WEBHOOK_URL\""),
                );
                return None;
            }
            return Some(SecretSource::Env(e.get_ref().clone()));
        }
        if let Some(f) = file {
            return Some(SecretSource::File(self.resolve(f.get_ref())));
        }
        if let Some((v, _)) = literal {
            return Some(SecretSource::Literal(v));
        }
        if what == "url" {
            self.err(entry, "the sink has no url".into(), Some("add url_env = \"NAME\" or url_file = \"PATH\" (or url = \"https://…\")"));
        }
        None
    }
}
