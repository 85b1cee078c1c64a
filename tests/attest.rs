//! Recorded deployments: attested by a CI's OIDC ID token (keys made at test
//! time, JWKS from a file or served locally, the GitHub Actions token request
//! answered locally), or asserted — and an asserted deployment never counts
//! as approved; a re-recorded one keeps its first facts and says it changed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;

use crate::support::{deploy_findings, Repo, Sign};

const GITHUB: &str = "https://token.actions.githubusercontent.com";

/// An RSA key made now (openssl), its JWKS, and tokens it signs.
struct Issuer {
    pem: Vec<u8>,
    kid: String,
    jwks: String,
}

impl Issuer {
    fn new(dir: &Path, kid: &str) -> Result<Issuer> {
        let key = dir.join(format!("{kid}.pem"));
        let out = std::process::Command::new("openssl").args(["genrsa", "-out"]).arg(&key).arg("2048").output()?;
        anyhow::ensure!(out.status.success(), "openssl genrsa: {}", String::from_utf8_lossy(&out.stderr));
        let out = std::process::Command::new("openssl").args(["rsa", "-noout", "-modulus", "-in"]).arg(&key).output()?;
        let text = String::from_utf8(out.stdout)?;
        let hex_n = text.trim().strip_prefix("Modulus=").context("modulus")?;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hex::decode(hex_n)?);
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"}]});
        Ok(Issuer { pem: std::fs::read(&key)?, kid: kid.to_string(), jwks: jwks.to_string() })
    }

    fn sign(&self, claims: &serde_json::Value) -> Result<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_rsa_pem(&self.pem)?)?)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// GitHub's claims (fixtures/oidc), fresh, for `sha`.
fn github_claims(sha: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oidc/github-actions-claims.json"))?;
    let mut c: serde_json::Value = serde_json::from_str(&text)?;
    let t = now();
    c["iat"] = t.into();
    c["nbf"] = (t - 5).into();
    c["exp"] = (t + 300).into();
    c["sha"] = sha.into();
    c["actor"] = "alice".into();
    Ok(c)
}

/// A tiny HTTP server: `/jwks` → the JWKS; `/token?…audience=A` with the
/// right bearer → `{"value": TOKEN}` (GitHub Actions' ID token request).
fn serve(jwks: String, token: String, bearer: &'static str) -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(16) {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                request.push_str(&line);
                line.clear();
            }
            let lower = request.to_ascii_lowercase();
            let (status, body) = if request.starts_with("GET /jwks ") {
                ("200 OK", jwks.clone())
            } else if request.starts_with("GET /token?") && request.contains("audience=git-audit") {
                if lower.contains(&format!("authorization: bearer {bearer}")) {
                    ("200 OK", serde_json::json!({"count": 1, "value": token}).to_string())
                } else {
                    ("401 Unauthorized", "{}".to_string())
                }
            } else {
                ("404 Not Found", "{}".to_string())
            };
            let mut s = &stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.flush();
            let _ = (&stream).read(&mut [0u8; 0]);
        }
    });
    Ok(addr)
}

struct Setup {
    repo: Repo,
    issuer: Issuer,
    sha: String,
    policy: PathBuf,
}

fn setup(extra_policy: &str) -> Result<Setup> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let sha = repo.commit("feat: shipped", Sign::None)?;
    let issuer = Issuer::new(repo.tmp.path(), "key-1")?;
    std::fs::write(repo.tmp.path().join("jwks.json"), &issuer.jwks)?;
    let policy = repo.tmp.path().join("deploy-policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\n[[ci_issuers]]\nissuer = \"{GITHUB}\"\njwks_file = \"jwks.json\"\n[[environments]]\nname = \"production\"\ndeployers = [\"alice\"]\napprovers = [\"bob\"]\nrequired_approvals = 1\nrequire_attested = true\n{extra_policy}"
        ),
    )?;
    Ok(Setup { repo, issuer, sha, policy })
}

impl Setup {
    fn record(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String, String)> {
        let mut all = vec!["--policy", self.policy.to_str().unwrap_or_default(), "record", "deployment", "--environment", "production"];
        all.extend(args);
        let mut env = env.to_vec();
        env.extend([("GITHUB_ACTIONS", "true"), ("GITHUB_REPOSITORY", "acme/api"), ("GITHUB_ACTOR", "mallory")]);
        self.repo.audit_env(&all, &env)
    }

    fn entries(&self) -> Result<usize> {
        Ok(self.repo.audit(&["ledger", "export"])?.1.lines().count())
    }

    fn findings(&self) -> Result<serde_json::Value> {
        let (_, out, err) = self.repo.audit(&[
            "--policy",
            self.policy.to_str().unwrap_or_default(),
            "report",
            "compliance",
            "--since",
            "2000-01-01",
            "--format",
            "json",
        ])?;
        serde_json::from_str(&out).with_context(|| format!("{out}{err}"))
    }
}

fn rules_of(v: &serde_json::Value, id: &str) -> Vec<String> {
    deploy_findings(v)
        .into_iter()
        .filter(|f| f["subject"].as_str().is_some_and(|s| s.ends_with(&format!("deployment {id}"))))
        .filter_map(|f| f["rule"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_token_from_a_named_issuer_attests_the_deployment_and_a_bad_one_is_refused_with_its_reason() -> Result<()> {
    let s = setup("")?;
    let good = s.issuer.sign(&github_claims(&s.sha)?)?;
    // GITHUB_ACTOR says mallory; the token says alice: the token wins.
    let (code, out, err) = s.record(&["--id", "a1"], &[("GIT_AUDIT_ID_TOKEN", &good)])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("from github-actions, attested by {GITHUB}")), "{out}");
    let (_, out, _) = s.repo.audit(&[
        "--policy",
        s.policy.to_str().context("path")?,
        "report",
        "deployments",
        "--since",
        "2000-01-01",
        "--format",
        "json",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let d = &v["deployments"][0];
    assert_eq!(
        (d["claims"].as_str(), d["deployer"].as_str(), d["repository"].as_str()),
        (Some("attested"), Some("alice"), Some("acme/api")),
        "{d}"
    );
    assert_eq!(d["attestation"]["run_id"], "9876543210", "{d}");
    assert_eq!(d["attestation"]["workflow"], "acme/api/.github/workflows/deploy.yml@refs/heads/main", "{d}");
    let (_, table, _) = s.repo.audit_env(&["report", "deployments", "--since", "2000-01-01"], &[("COLUMNS", "160")])?;
    assert!(table.contains("github-actions (attested)"), "{table}");
    // Attested: no deploy.unattested; its (absent) approvals still do not pass.
    assert_eq!(rules_of(&s.findings()?, "a1"), ["deploy.no-approval"]);

    // A flag that contradicts the token: refused.
    let before = s.entries()?;
    let (code, _, err) = s.record(&["--actor", "mallory"], &[("GIT_AUDIT_ID_TOKEN", &good)])?;
    assert_eq!(code, 2);
    assert!(err.contains("--actor says `mallory`, but the ID token attests `alice`"), "{err}");
    // Each bad token: refused with the reason, nothing recorded.
    let other = Issuer::new(s.repo.tmp.path(), "key-1")?; // same kid, another key: a forgery
    let mut cases: Vec<(String, &str)> = Vec::new();
    let mut c = github_claims(&s.sha)?;
    c["aud"] = "https://github.com/acme".into();
    cases.push((s.issuer.sign(&c)?, "the ID token is for audience \"https://github.com/acme\", not `git-audit`"));
    let mut c = github_claims(&s.sha)?;
    c["iss"] = "https://token.evil.example".into();
    cases.push((s.issuer.sign(&c)?, "issued by `https://token.evil.example`, which no [[ci_issuers]] entry of the policy names"));
    let mut c = github_claims(&s.sha)?;
    c["exp"] = (now() - 3600).into();
    c["iat"] = (now() - 7200).into();
    c["nbf"] = (now() - 7200).into();
    cases.push((s.issuer.sign(&c)?, "the ID token expired at"));
    cases.push((
        other.sign(&github_claims(&s.sha)?)?,
        "signature does not verify with https://token.actions.githubusercontent.com's key key-1",
    ));
    let mut c = github_claims(&s.sha)?;
    c["nbf"] = (now() + 3600).into();
    cases.push((s.issuer.sign(&c)?, "not valid yet"));
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &github_claims(&s.sha)?,
        &jsonwebtoken::EncodingKey::from_secret(b"known to all"),
    )?;
    cases.push((hs, "signed with HS256, a shared-secret or no algorithm"));
    for (token, why) in cases {
        let (code, _, err) = s.record(&[], &[("GIT_AUDIT_ID_TOKEN", &token)])?;
        assert_eq!(code, 2, "{why}: {err}");
        assert!(err.contains("refused: ") && err.contains(why) && err.contains("nothing was recorded"), "expected `{why}`:\n{err}");
        assert!(!err.contains(&token), "the token itself is never printed");
    }
    assert_eq!(s.entries()?, before, "nothing recorded by a refused token");
    Ok(())
}

#[test]
fn github_actions_gives_its_token_on_request_and_keys_come_from_the_jwks_url() -> Result<()> {
    let s = setup("")?;
    let token = s.issuer.sign(&github_claims(&s.sha)?)?;
    let addr = serve(s.issuer.jwks.clone(), token, "req-secret")?;
    std::fs::write(&s.policy, format!("version = 1\n[[ci_issuers]]\nissuer = \"{GITHUB}\"\njwks_url = \"http://{addr}/jwks\"\n"))?;
    let url = format!("http://{addr}/token?api-version=2.0");
    let (code, out, err) =
        s.record(&["--id", "g1"], &[("ACTIONS_ID_TOKEN_REQUEST_URL", &url), ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "req-secret")])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("attested by"), "{out}");
    // The wrong request token: GitHub says 401, and we say what to check.
    let (code, _, err) = s.record(&[], &[("ACTIONS_ID_TOKEN_REQUEST_URL", &url), ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong")])?;
    assert_eq!(code, 2);
    assert!(err.contains("HTTP 401") && err.contains("id-token: write"), "{err}");
    assert!(!err.contains("req-secret") && !err.contains("wrong"), "no credential in the message: {err}");
    Ok(())
}

#[test]
fn a_gitlab_token_maps_its_own_claims() -> Result<()> {
    let s = setup("")?;
    std::fs::write(
        &s.policy,
        "version = 1\n[[ci_issuers]]\nissuer = \"https://gitlab.example.com\"\njwks_file = \"jwks.json\"\naudience = \"https://audit.example\"\n",
    )?;
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oidc/gitlab-claims.json"))?;
    let mut c: serde_json::Value = serde_json::from_str(&text)?;
    let t = now();
    c["iat"] = t.into();
    c["nbf"] = t.into();
    c["exp"] = (t + 300).into();
    c["sha"] = s.sha.clone().into();
    c["aud"] = "https://audit.example".into();
    let token = s.issuer.sign(&c)?;
    let (code, out, err) = s.repo.audit_env(
        &["--policy", s.policy.to_str().context("path")?, "record", "deployment", "--id", "gl1"],
        &[("GITLAB_CI", "true"), ("GIT_AUDIT_ID_TOKEN", &token)],
    )?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("from gitlab-ci, attested by https://gitlab.example.com"), "{out}");
    let (_, out, _) = s.repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let d = &v["deployments"][0];
    assert_eq!(
        (d["deployer"].as_str(), d["repository"].as_str(), d["environment"].as_str()),
        (Some("dave"), Some("acme/api"), Some("production")),
        "{d}"
    );
    assert_eq!(d["attestation"]["run_id"], "574", "{d}");
    Ok(())
}

#[test]
fn asserted_deployments_never_count_as_approved_and_re_recording_keeps_the_first_facts() -> Result<()> {
    let s = setup("")?;
    // Asserted (no token): deployed by alice, "approved by bob".
    let (code, out, err) = s.record(&["--sha", &s.sha, "--actor", "alice", "--approved-by", "bob", "--id", "d1"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("asserted"), "{out}");
    assert!(err.contains("no ID token") && err.contains("recorded as asserted"), "{err}");
    let v = s.findings()?;
    assert_eq!(rules_of(&v, "d1"), ["deploy.unattested", "deploy.no-approval"], "{v}");
    // An invented deployment by mallory "approved by bob": every finding stands.
    s.record(&["--sha", &s.sha, "--actor", "mallory", "--approved-by", "bob", "--id", "d2"], &[])?;
    // … re-recorded as alice, approved by bob, to clear them.
    s.record(&["--sha", &s.sha, "--actor", "alice", "--approved-by", "bob", "--id", "d2"], &[])?;
    let v = s.findings()?;
    let d2 = rules_of(&v, "d2");
    assert_eq!(d2, ["deploy.record-changed", "deploy.unattested", "deploy.deployer-not-allowed", "deploy.no-approval"], "{v}");
    let changed = deploy_findings(&v)
        .into_iter()
        .find(|f| f["rule"] == "deploy.record-changed")
        .and_then(|f| f["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        changed.contains("by writer owner")
            && changed.contains("deployer mallory → alice")
            && changed.contains("judged on what was first recorded"),
        "{changed}"
    );
    // Approvers added after the fact are a correction too.
    s.record(&["--sha", &s.sha, "--actor", "alice", "--id", "d3"], &[])?;
    s.record(&["--sha", &s.sha, "--actor", "alice", "--approved-by", "bob", "--id", "d3"], &[])?;
    let v = s.findings()?;
    assert!(rules_of(&v, "d3").contains(&"deploy.record-changed".to_string()), "{v}");
    let (_, out, _) = s.repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "json"])?;
    let r: serde_json::Value = serde_json::from_str(&out)?;
    let d3 = r["deployments"].as_array().and_then(|a| a.iter().find(|d| d["id"] == "d3")).cloned().unwrap_or_default();
    assert!(d3["corrections"][0].as_str().is_some_and(|c| c.contains("approvers added after the fact: bob")), "{d3}");
    assert_eq!(d3["claims"], "asserted");
    Ok(())
}
