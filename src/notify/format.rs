//! What each kind of sink receives: the Standard Webhooks envelope (signed),
//! a Slack incoming-webhook body with Block Kit, or a Teams Workflows body
//! carrying an Adaptive Card. All three are made from the same event.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::policy::notify::{Sink, SinkKind};

/// A request ready to send: headers and body (the URL is added by the sender).
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Builds the request for `sink` from a stored event body (`{"type", "timestamp", "data"}`).
/// `secret` is the sink's signing secret as read (webhook sinks); `unix` the
/// send time (Standard Webhooks signs it).
pub fn request(sink: &Sink, msg_id: &str, event: &Value, secret: Option<&str>, unix: i64) -> Result<Request, String> {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    let body = match sink.kind {
        SinkKind::Webhook => {
            let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
            let secret = secret.ok_or("no signing secret")?;
            let signature = standard_signature(secret, msg_id, unix, &body)?;
            headers.push(("webhook-id".into(), msg_id.to_string()));
            headers.push(("webhook-timestamp".into(), unix.to_string()));
            headers.push(("webhook-signature".into(), format!("v1,{signature}")));
            if sink.github_signature {
                headers.push(("x-hub-signature-256".into(), format!("sha256={}", github_signature(secret, &body))));
            }
            body
        }
        SinkKind::Slack => serde_json::to_vec(&slack(event)).map_err(|e| e.to_string())?,
        SinkKind::Teams => serde_json::to_vec(&teams(event)).map_err(|e| e.to_string())?,
    };
    if sink.kind != SinkKind::Webhook {
        // Receivers that deduplicate can still use the id.
        headers.push(("webhook-id".into(), msg_id.to_string()));
    }
    Ok(Request { headers, body })
}

/// The Standard Webhooks `v1` signature: base64 HMAC-SHA256, keyed with the
/// base64-decoded secret (after `whsec_`), of `id.timestamp.body`.
pub fn standard_signature(secret: &str, msg_id: &str, unix: i64, body: &[u8]) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "the signing secret is not `whsec_` followed by base64".to_string())?;
    if key.is_empty() {
        return Err("the signing secret is empty".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(b64.encode(mac.finalize().into_bytes()))
}

/// GitHub's `X-Hub-Signature-256` value (hex HMAC-SHA256 of the body, keyed with the secret text).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Slack mrkdwn and `text` need `&`, `<` and `>` escaped; nothing else.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What a person reads, taken from an event: a title, a summary, facts, detail lines.
struct Card {
    title: String,
    summary: String,
    facts: Vec<(String, String)>,
    details: Vec<String>,
}

fn card(event: &Value) -> Card {
    let kind = event["type"].as_str().unwrap_or("event");
    let data = &event["data"];
    let title = match kind {
        "push.refused" => "Push refused".to_string(),
        "bypass.used" => "Break glass used".to_string(),
        "policy.changed" => "Policy changed".to_string(),
        "deployment.failed" => "Deployment failed".to_string(),
        "ledger.gap" => "Audit ledger gap".to_string(),
        "ledger.verify-failed" => "Audit ledger verification failed".to_string(),
        "notify.test" => "git-audit test message".to_string(),
        k if k.starts_with("finding.") && data["answer"] == "could not verify" => format!("Could not verify: {}", &k["finding.".len()..]),
        k if k.starts_with("finding.") => format!("New finding: {}", &k["finding.".len()..]),
        k if k.starts_with("anomaly.") => format!("Anomaly: {}", &k["anomaly.".len()..]),
        "digest" => "Audit digest".to_string(),
        k => k.to_string(),
    };
    let mut facts = Vec::new();
    let mut fact = |name: &str, v: &Value| {
        let text = match v {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(a) if !a.is_empty() => {
                a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect::<Vec<_>>().join(", ")
            }
            _ => return,
        };
        facts.push((name.to_string(), text));
    };
    fact("Repository", &data["repository"]);
    fact("Refs", &Value::Array(data["refs"].as_array().into_iter().flatten().map(|r| r["ref"].clone()).collect()));
    fact("Pusher", &data["pusher"]);
    fact("Actor", &data["actor"]);
    fact("Environment", &data["environment"]);
    fact("Rules", &data["rules"]);
    fact("Subject", &data["subject"]);
    fact("Ledger seq", &data["ledger"]["seq"]);
    let mut details: Vec<String> = data["refs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["findings"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| {
            // Each violation names its commit (short id), where it has one.
            let commit = f["commit"].as_str().map(|c| format!("{} ", crate::git::short_id(c))).unwrap_or_default();
            Some(format!("{commit}{}: {}", f["rule"].as_str()?, f["message"].as_str()?))
        })
        .collect();
    details.extend(data["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_string)));
    details.extend(data["lines"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_string)));
    let shown = details.len().min(8);
    if details.len() > shown {
        let more = details.len() - shown;
        details.truncate(shown);
        details.push(format!("… and {more} more"));
    }
    Card { title, summary: data["summary"].as_str().unwrap_or_default().to_string(), facts, details }
}

/// A Slack incoming-webhook body: Block Kit `blocks` and a `text` fallback.
/// What a pusher can write (commit subjects, reasons, names) goes into
/// `plain_text` objects, which Slack does not format or link; the fallback
/// `text` is mrkdwn, so `&`, `<` and `>` are escaped there (no `<url|label>`).
pub fn slack(event: &Value) -> Value {
    let c = card(event);
    let text = slack_escape(&format!("{}: {}", c.title, c.summary));
    let plain = |t: &str, max: usize| json!({"type": "plain_text", "text": truncate(t, max), "emoji": false});
    let mut blocks =
        vec![json!({"type": "header", "text": plain(&c.title, 150)}), json!({"type": "section", "text": plain(&c.summary, 3000)})];
    if !c.facts.is_empty() {
        let fields: Vec<Value> = c.facts.iter().take(10).map(|(k, v)| plain(&format!("{k}: {v}"), 2000)).collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if !c.details.is_empty() {
        let lines: Vec<String> = c.details.iter().map(|d| format!("• {d}")).collect();
        blocks.push(json!({"type": "section", "text": plain(&lines.join("\n"), 3000)}));
    }
    blocks
        .push(json!({"type": "context", "elements": [plain(&format!("git-audit · {}", event["type"].as_str().unwrap_or_default()), 300)]}));
    json!({"text": text, "blocks": blocks})
}

/// A Teams Workflows ("When a Teams webhook request is received") body: a
/// message whose one attachment is an Adaptive Card. Only the title (ours) is
/// a TextBlock; everything else is a RichTextBlock of TextRuns, which Teams
/// renders as written — a commit subject cannot become a markdown link.
pub fn teams(event: &Value) -> Value {
    let c = card(event);
    let run = |t: &str, bold: bool| {
        let mut r = json!({"type": "TextRun", "text": t});
        if bold {
            r["weight"] = json!("Bolder");
        }
        r
    };
    let rich = |inlines: Vec<Value>| json!({"type": "RichTextBlock", "inlines": inlines});
    let mut body = vec![
        json!({"type": "TextBlock", "text": c.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
        rich(vec![run(&c.summary, false)]),
    ];
    for (k, v) in &c.facts {
        body.push(rich(vec![run(&format!("{k}: "), true), run(v, false)]));
    }
    for d in &c.details {
        body.push(rich(vec![run(&format!("• {d}"), false)]));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn could_not_verify_is_not_told_as_a_violation() {
        let rule = |r: crate::rule::Rule| crate::rule::Finding::new(r, crate::rule::Severity::Warning, "m");
        let (_, unverified) = crate::notify::finding_notice("acme/api", &rule(crate::rule::Rule::DeployApproverUnverified));
        let (_, violation) = crate::notify::finding_notice("acme/api", &rule(crate::rule::Rule::DeployNoApproval));
        let event = |n: &crate::notify::Notice| serde_json::json!({"type": n.kind, "data": n.data});
        assert_eq!(card(&event(&unverified)).title, "Could not verify: deploy.approver-unverified");
        assert_eq!(card(&event(&violation)).title, "New finding: deploy.no-approval");
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's reference libraries.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig.as_deref(), Ok("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        assert!(standard_signature("whsec_***", "m", 1, b"{}").is_err());
    }

    #[test]
    fn slack_escapes_and_keeps_a_fallback() {
        let e = json!({"type": "push.refused", "data": {"summary": "a <b> & c", "repository": "r&d"}});
        let s = slack(&e);
        assert_eq!(s["text"], "Push refused: a &lt;b&gt; &amp; c");
        assert!(!s["text"].to_string().contains("<b>"));
        let t = teams(&e);
        assert_eq!(t["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
    }

    /// Every text object in `v` whose text contains `needle`, with its type.
    fn holders<'a>(v: &'a Value, needle: &str, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if m.get("text").and_then(Value::as_str).is_some_and(|t| t.contains(needle)) {
                    out.push(v);
                }
                m.values().for_each(|x| holders(x, needle, out));
            }
            Value::Array(a) => a.iter().for_each(|x| holders(x, needle, out)),
            _ => {}
        }
    }

    #[test]
    fn pusher_text_cannot_become_a_link_or_markup() {
        let subject = "[re-login](https://evil.example/x) <https://evil.example|click> *urgent*";
        let e = json!({"type": "push.refused", "data": {
            "summary": subject,
            "pusher": subject,
            "refs": [{"ref": "refs/heads/main", "findings": [{"rule": "signing.required", "message": subject}]}],
        }});
        let mut found = Vec::new();
        let s = slack(&e);
        holders(&s["blocks"], "evil.example", &mut found);
        assert!(!found.is_empty());
        assert!(found.iter().all(|t| t["type"] == "plain_text"), "{found:?}");
        assert!(!s["text"].as_str().unwrap_or_default().contains("<https"), "{s}");
        let mut found = Vec::new();
        let t = teams(&e);
        holders(&t, "evil.example", &mut found);
        assert!(found.len() >= 3, "summary, pusher, finding: {found:?}");
        assert!(found.iter().all(|x| x["type"] == "TextRun"), "only TextRuns (no markdown) carry it: {found:?}");
    }

    /// The digest's lines carry pushers' and break-glass reasons' text: the
    /// same injection test as the notifications.
    #[test]
    fn digest_lines_cannot_become_a_link_or_markup() {
        let evil = "[re-login](https://evil.example/x) <https://evil.example|click> <!channel> *urgent*";
        let e = json!({"type": "digest", "data": {
            "repository": "acme/api",
            "summary": format!("acme/api, since 2026-11-23: 1 refused push ({evil})"),
            "lines": [format!("refused: {evil} (signing.required)"), format!("break glass: alice: {evil}")],
            "counts": {"refused_pushes": 1}, "since": "2026-11-23T00:00:00Z", "until": null,
            "checkpoint": {"origin": "o", "tree_size": 1, "root": "ab"},
        }});
        let s = slack(&e);
        assert_eq!(card(&e).title, "Audit digest");
        let mut found = Vec::new();
        holders(&s["blocks"], "evil.example", &mut found);
        assert!(found.len() >= 2, "the summary and the lines: {found:?}");
        assert!(found.iter().all(|t| t["type"] == "plain_text"), "plain text: Slack parses no links or mentions there: {found:?}");
        assert!(found.iter().any(|t| t["text"].as_str().is_some_and(|x| x.contains("break glass: alice"))), "{found:?}");
        let fallback = s["text"].as_str().unwrap_or_default();
        assert!(!fallback.contains("<!channel>") && !fallback.contains("<https"), "the notification text is escaped: {fallback}");
        let mut found = Vec::new();
        let t = teams(&e);
        holders(&t, "evil.example", &mut found);
        assert!(found.len() >= 2, "{found:?}");
        assert!(found.iter().all(|x| x["type"] == "TextRun"), "{found:?}");
    }
}
