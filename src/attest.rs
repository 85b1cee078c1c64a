//! Attested deployments: a CI job proves who it is with its OIDC ID token.
//!
//! `record deployment` learns the repository, ref, actor, workflow and run
//! from flags and CI variables: what the job *asserts*. With a
//! `[[ci_issuers]]` entry in the policy and an ID token from the CI (GitHub
//! Actions' `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, GitLab's `id_tokens`, or
//! any JWT in `GIT_AUDIT_ID_TOKEN` / `--id-token FILE`), they are *attested*:
//! the token's signature is checked against the issuer's published keys
//! (JWKS), its issuer, audience, expiry and not-before are checked, and the
//! facts are taken from its claims. A token that fails any check is refused
//! with the reason, and nothing is recorded.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{CiIssuer, JwksSource};

/// How a recorded deployment's facts are known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub` (GitHub: `repo:OWNER/NAME:environment:prod`; GitLab: `project_path:…:ref_type:branch:ref:main`).
    pub subject: String,
    pub audience: String,
    /// The workflow (GitHub `job_workflow_ref`, else `workflow`; GitLab `ci_config_ref_uri`).
    pub workflow: Option<String>,
    /// The CI run (GitHub `run_id`, GitLab `pipeline_id`).
    pub run_id: Option<String>,
    /// The token's `jti`, when it has one.
    pub token_id: Option<String>,
    /// The key (`kid`) that signed it.
    pub key_id: Option<String>,
    /// Unix seconds.
    pub issued_at: Option<i64>,
    pub expires_at: i64,
}

/// The facts a token attests, in git-audit's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub repository: Option<String>,
    pub git_ref: Option<String>,
    pub actor: Option<String>,
    pub sha: Option<String>,
    pub environment: Option<String>,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the ID token is not a JWT ({0})")]
    Malformed(String),
    #[error("the ID token is signed with {0}, a shared-secret or no algorithm; only issuer keys (RS*, PS*, ES*, EdDSA) are accepted")]
    Algorithm(String),
    #[error("the ID token was issued by `{0}`, which no [[ci_issuers]] entry of the policy names\nHint: add [[ci_issuers]] issuer = \"{0}\" with its jwks_url")]
    UnknownIssuer(String),
    #[error("the ID token is for audience {found}, not `{expected}` ([[ci_issuers]] {issuer})\nHint: request the token for audience `{expected}` (GitHub: core.getIDToken('{expected}'); GitLab: id_tokens: … aud: {expected})")]
    Audience { found: String, expected: String, issuer: String },
    #[error("the ID token's issuer does not match `{0}`")]
    Issuer(String),
    #[error("the ID token expired at {0} (unix seconds); request a fresh one in the deploy job")]
    Expired(i64),
    #[error("the ID token is not valid yet (nbf in the future)")]
    NotYetValid,
    #[error("the ID token's signature does not verify with {issuer}'s key {kid} (forged, or altered)")]
    Signature { issuer: String, kid: String },
    #[error("the ID token names key `{kid}`, which {issuer}'s JWKS does not hold")]
    UnknownKey { issuer: String, kid: String },
    #[error("cannot read {issuer}'s keys: {why}")]
    Jwks { issuer: String, why: String },
    #[error("the ID token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("the ID token was refused: {0}")]
    Other(String),
    #[error("--{flag} says `{said}`, but the ID token attests `{attested}`; leave --{flag} out, or fix it")]
    Contradicts { flag: &'static str, said: String, attested: String },
}

/// The token's payload, unverified (only to pick the issuer whose keys verify it).
fn peek(token: &str) -> Result<Value, Refused> {
    use base64::Engine;
    let part = token.split('.').nth(1).ok_or_else(|| Refused::Malformed("expected header.payload.signature".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| Refused::Malformed("the payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| Refused::Malformed(format!("the payload is not JSON: {e}")))
}

/// Verifies `token` against the policy's issuers; `fetch` reads a JWKS URL.
pub fn verify(token: &str, issuers: &[CiIssuer], fetch: &dyn Fn(&str) -> Result<String, String>) -> Result<(Attestation, Claims), Refused> {
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::Algorithm as A;
    let token = token.trim();
    let header = jsonwebtoken::decode_header(token).map_err(|e| Refused::Malformed(e.to_string()))?;
    if !matches!(header.alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 | A::ES256 | A::ES384 | A::EdDSA) {
        return Err(Refused::Algorithm(format!("{:?}", header.alg)));
    }
    let unverified = peek(token)?;
    let iss = unverified["iss"].as_str().ok_or_else(|| Refused::MissingClaim("iss".into()))?;
    let issuer = issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| Refused::UnknownIssuer(iss.to_string()))?;
    let jwks_text = match &issuer.jwks {
        JwksSource::File(_, text) => text.clone(),
        JwksSource::Url(url) => fetch(url).map_err(|why| Refused::Jwks { issuer: issuer.issuer.clone(), why })?,
    };
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks_text)
        .map_err(|e| Refused::Jwks { issuer: issuer.issuer.clone(), why: format!("not a JWKS document: {e}") })?;
    let kid = header.kid.clone().unwrap_or_default();
    let jwk = match &header.kid {
        Some(k) => jwks.find(k),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| Refused::UnknownKey { issuer: issuer.issuer.clone(), kid: kid.clone() })?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| Refused::Jwks { issuer: issuer.issuer.clone(), why: e.to_string() })?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[issuer.audience.as_str()]);
    v.set_issuer(&[issuer.issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v.leeway = 60;
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| match e.kind() {
        ErrorKind::InvalidAudience => {
            Refused::Audience { found: unverified["aud"].to_string(), expected: issuer.audience.clone(), issuer: issuer.issuer.clone() }
        }
        ErrorKind::InvalidIssuer => Refused::Issuer(issuer.issuer.clone()),
        ErrorKind::ExpiredSignature => Refused::Expired(unverified["exp"].as_i64().unwrap_or_default()),
        ErrorKind::ImmatureSignature => Refused::NotYetValid,
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey => {
            Refused::Signature { issuer: issuer.issuer.clone(), kid: kid.clone() }
        }
        ErrorKind::MissingRequiredClaim(c) => Refused::MissingClaim(c.clone()),
        _ => Refused::Other(e.to_string()),
    })?;
    let c = data.claims;
    let text = |k: &str| match &c[k] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let gitlab = c.get("project_path").is_some();
    let attestation = Attestation {
        issuer: issuer.issuer.clone(),
        subject: text("sub").unwrap_or_default(),
        audience: issuer.audience.clone(),
        workflow: if gitlab { text("ci_config_ref_uri") } else { text("job_workflow_ref").or_else(|| text("workflow")) },
        run_id: if gitlab { text("pipeline_id") } else { text("run_id") },
        token_id: text("jti"),
        key_id: header.kid,
        issued_at: c["iat"].as_i64(),
        expires_at: c["exp"].as_i64().unwrap_or_default(),
    };
    let claims = if gitlab {
        Claims {
            repository: text("project_path"),
            git_ref: text("ref"),
            actor: text("user_login"),
            sha: text("sha"),
            environment: text("environment"),
        }
    } else {
        Claims {
            repository: text("repository"),
            git_ref: text("ref").map(|r| r.strip_prefix("refs/heads/").map(str::to_string).unwrap_or(r)),
            actor: text("actor"),
            sha: text("sha"),
            environment: text("environment"),
        }
    };
    Ok((attestation, claims))
}

/// The job's ID token, if it has one: `--id-token FILE` (`-` for stdin),
/// else `GIT_AUDIT_ID_TOKEN` (GitLab: name it in `id_tokens`), else requested
/// from GitHub Actions (`permissions: id-token: write`) for `audience`.
pub fn find_token(
    file: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
    audience: &str,
    fetch: &dyn Fn(&str, &str) -> Result<String, String>,
) -> Result<Option<String>, String> {
    if let Some(f) = file {
        let text = if f == std::path::Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| format!("cannot read the ID token from stdin: {e}"))?;
            s
        } else {
            std::fs::read_to_string(f).map_err(|e| format!("cannot read the ID token {}: {e}", f.display()))?
        };
        return Ok(Some(text.trim().to_string()));
    }
    if let Some(t) = env("GIT_AUDIT_ID_TOKEN").filter(|t| !t.trim().is_empty()) {
        return Ok(Some(t.trim().to_string()));
    }
    if let (Some(url), Some(bearer)) = (env("ACTIONS_ID_TOKEN_REQUEST_URL"), env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")) {
        let sep = if url.contains('?') { '&' } else { '?' };
        let body = fetch(&format!("{url}{sep}audience={audience}"), &bearer).map_err(|e| {
            format!("cannot get the job's ID token from GitHub Actions: {e} (does the job have `permissions: id-token: write`?)")
        })?;
        let v: Value = serde_json::from_str(&body).map_err(|_| "GitHub Actions answered the ID token request with no JSON".to_string())?;
        let token = v["value"].as_str().ok_or("GitHub Actions answered the ID token request without a `value`")?;
        return Ok(Some(token.to_string()));
    }
    Ok(None)
}
