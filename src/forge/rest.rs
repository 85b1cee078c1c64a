//! What every forge client shares: the error type, pages, counters, the ETag
//! cache's interface, `Link` pagination, rate-limit waits and redaction — and
//! [`RestClient`], the polite JSON-over-HTTPS client GitLab and Gitea use
//! (GitHub's goes through octocrab: `github/client.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HeaderMap;
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{repo}: GitHub rejected the credentials (401){hint}")]
    BadCredentials { repo: String, hint: String },
    #[error("{repo}: not found, or the token cannot see it (404 on {path})\nHint: check the name, and that the token can read the repository ({permission})")]
    NotFound { repo: String, path: String, permission: String },
    #[error("{repo}: permission denied on {path} (403): {message}\nHint: the token needs {permission}")]
    Forbidden { repo: String, path: String, message: String, permission: String },
    #[error("{repo}: GitHub kept failing on {path}: {last}")]
    Unavailable { repo: String, path: String, last: String },
    #[error("{repo}: unexpected answer on {path}: {message}")]
    Unexpected { repo: String, path: String, message: String },
    #[error("{repo}: GitHub's GraphQL endpoint ({url}) answered 404: a proxy or GitHub Enterprise setup that does not serve it, or a token that may not use it\nHint: sync pull requests over REST instead: `git-audit sync --pulls-api rest …`")]
    GraphqlMissing { repo: String, url: String },
    #[error("cannot set up the GitHub client: {0}")]
    Setup(String),
    #[error("the ledger's HTTP cache: {0}")]
    Cache(String),
    #[error("interrupted")]
    Interrupted,
    /// GitLab's or Gitea's 401.
    #[error("{repo}: {forge} rejected the credentials (401)\nHint: {hint}")]
    Rejected { forge: &'static str, repo: String, hint: String },
    /// GitLab or Gitea kept failing (5xx, timeouts) past every retry.
    #[error("{repo}: {forge} kept failing on {path}: {last}")]
    Failing { forge: &'static str, repo: String, path: String, last: String },
}

/// One page as fetched (or as cached, on a 304).
#[derive(Debug, Clone)]
pub struct Page {
    pub body: serde_json::Value,
    /// The next page's path, from the `Link` header.
    pub next: Option<String>,
    pub not_modified: bool,
}

/// Counters for the summary line.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub not_modified: AtomicU64,
    pub retries: AtomicU64,
    pub waited_ms: AtomicU64,
    pub remaining: Mutex<Option<(u64, u64)>>,
    /// Progress, for whoever shows it: the phase of the current repository's
    /// sync and what it has fetched so far.
    pub phase: Mutex<&'static str>,
    pub pull_requests: AtomicU64,
    pub reviews: AtomicU64,
    pub deployments: AtomicU64,
}

impl Stats {
    pub fn set_phase(&self, phase: &'static str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }
}

/// The cache of ETag'd bodies: kept in the ledger database.
pub trait HttpCache: Send + Sync {
    /// (etag, body, next-page link) stored for `url`.
    fn get(&self, url: &str) -> Result<Option<CachedPage>, String>;
    fn put(&self, url: &str, page: &CachedPage) -> Result<(), String>;
}

/// A cached response: what a 304 stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPage {
    pub etag: String,
    pub body: Vec<u8>,
    /// The `Link: rel="next"` of the original response (a 304 need not repeat it).
    pub next: Option<String>,
}

/// How long a 403/429 asks us to wait: `retry-after`, or until
/// `x-ratelimit-reset` when the primary limit is exhausted. `None`: not a rate limit.
pub fn rate_limit_wait(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(secs) = get("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let remaining = get("x-ratelimit-remaining").or_else(|| get("ratelimit-remaining"));
    if remaining.as_deref() == Some("0") {
        let reset = get("x-ratelimit-reset").or_else(|| get("ratelimit-reset")).and_then(|v| v.parse::<i64>().ok())?;
        let now = chrono::Utc::now().timestamp();
        return Some(Duration::from_secs((reset - now).max(1) as u64));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Duration::from_secs(60));
    }
    None
}

/// The `rel="next"` target of a `Link` header, as a path relative to the API root.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    for part in link.split(',') {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim().trim_start_matches('<').trim_end_matches('>');
        if pieces.any(|p| p.trim() == "rel=\"next\"") {
            return Some(match url.find("://") {
                // octocrab resolves absolute URLs too; keep path + query for the cache key.
                Some(i) => url[i + 3..].find('/').map_or(url.to_string(), |j| url[i + 3 + j..].to_string()),
                None => url.to_string(),
            });
        }
    }
    None
}

/// A URL without its `user:password@` part, and whether it had one:
/// `https://u:p@ghe.example/api` → `https://<redacted>@ghe.example/api`.
pub fn strip_userinfo(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), false);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => (format!("{scheme}://<redacted>@{}", &rest[at + 1..]), true),
        None => (url.to_string(), false),
    }
}

/// Removes anything that looks like a credential from a message.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        let w = word.trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
        let tail = &word[w.len()..];
        if ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gloas-", "glcbt-", "Bearer", "token "]
            .iter()
            .any(|p| w.starts_with(p))
        {
            out.push_str("<redacted>");
        } else if w.contains("://") {
            out.push_str(&strip_userinfo(w).0);
        } else {
            out.push_str(w);
        }
        out.push_str(tail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn follows_next_links() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            HeaderValue::from_static("<https://api.github.com/repositories/1/pulls?page=2&per_page=100>; rel=\"next\", <https://api.github.com/repositories/1/pulls?page=5>; rel=\"last\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/repositories/1/pulls?page=2&per_page=100"));
        h.insert(http::header::LINK, HeaderValue::from_static("<http://127.0.0.1:9/api/v3/x?page=3>; rel=\"prev\""));
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn rate_limit_waits() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let reset = (chrono::Utc::now().timestamp() + 30).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap_or(HeaderValue::from_static("0")));
        let w = rate_limit_wait(StatusCode::FORBIDDEN, &h).unwrap_or_default();
        assert!(w.as_secs() >= 28 && w.as_secs() <= 31, "{w:?}");
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new()), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_pair("sha", "main"), "sha=main");
        assert_eq!(query_pair("ref_name", "release/1.0"), "ref_name=release%2F1.0");
        assert_eq!(query_pair("sha", "a&b#c"), "sha=a%26b%23c");
    }

    #[test]
    fn redacts_tokens() {
        assert_eq!(redact("bad header ghp_abcdef123 in request"), "bad header <redacted> in request");
        assert_eq!(redact("x \"github_pat_11AA\" y"), "x \"<redacted>\" y");
        assert_eq!(redact("GET https://bob:s3cret@ghe.example/api/v3/x failed"), "GET https://<redacted>@ghe.example/api/v3/x failed");
        assert_eq!(strip_userinfo("http://127.0.0.1:8080/api"), ("http://127.0.0.1:8080/api".to_string(), false));
        assert_eq!(strip_userinfo("https://t@h/a@b").0, "https://<redacted>@h/a@b");
    }
}

/// The items of every page of a list from `first`, following each page's
/// `next`, at most `limit_pages` pages: what every client's `get_all` does.
pub async fn all_pages<F, Fut>(first: &str, limit_pages: usize, mut get: F) -> Result<Vec<serde_json::Value>, ClientError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Page, ClientError>>,
{
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    let mut pages = 0;
    while let Some(p) = next {
        let page = get(p).await?;
        if let Some(items) = page.body.as_array() {
            out.extend(items.iter().cloned());
        }
        next = page.next;
        pages += 1;
        if pages >= limit_pages {
            break;
        }
    }
    Ok(out)
}

/// `key=value` for a query string, the value percent-encoded (a branch named
/// `a&b` or `x#y` must not become another parameter or a fragment).
pub fn query_pair(key: &str, value: &str) -> String {
    serde_urlencoded::to_string([(key, value)]).unwrap_or_else(|_| format!("{key}="))
}

/// Rate-limit waits one request sits through before it gives up.
pub const MAX_RATE_LIMIT_WAITS: u32 = 20;

/// The wait before retry `attempt`: `backoff` doubled per attempt (up to 64×),
/// with full jitter (anywhere in [base/2, base]).
pub fn retry_delay(backoff: Duration, attempt: u32) -> Duration {
    let base = backoff.saturating_mul(1u32 << attempt.min(6));
    let mut r = [0u8; 2];
    let _ = getrandom::getrandom(&mut r);
    base.mul_f64(0.5 + u16::from_le_bytes(r) as f64 / u16::MAX as f64 / 2.0)
}

/// Sleeps `wait`, counted and said.
pub async fn pause(stats: &Stats, repo: &str, wait: Duration, why: &str) {
    stats.retries.fetch_add(1, Ordering::Relaxed);
    stats.waited_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
    tracing::warn!(repository = repo, wait_ms = wait.as_millis() as u64, "{why}; waiting {:.1}s", wait.as_secs_f64());
    tokio::time::sleep(wait).await;
}

/// Waits out a rate limit — unless it lasts longer than `max_wait`, or this
/// request has already been limited [`MAX_RATE_LIMIT_WAITS`] times (a limit
/// that never lifts gives up with a clear error instead of a hang).
pub async fn wait_out(
    stats: &Stats,
    forge: &'static str,
    max_wait: Duration,
    repo: &str,
    path: &str,
    wait: Duration,
    waits: &mut u32,
) -> Result<(), ClientError> {
    *waits += 1;
    let fail = |last: String| ClientError::Failing { forge, repo: repo.into(), path: path.into(), last };
    if wait > max_wait {
        return Err(fail(format!("rate limited for {}s more", wait.as_secs())));
    }
    if *waits > MAX_RATE_LIMIT_WAITS {
        return Err(fail(format!("still rate limited after {MAX_RATE_LIMIT_WAITS} waits")));
    }
    pause(stats, repo, wait, &format!("rate limited by {forge}")).await;
    Ok(())
}

/// How one forge wants to be spoken to.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// Its name in messages (`GitLab`, `Gitea`).
    pub forge: &'static str,
    /// The header that carries the token, and what precedes the token in it.
    pub auth_header: &'static str,
    pub auth_prefix: &'static str,
    /// What to check when the token is refused.
    pub credentials_hint: &'static str,
}

/// A polite JSON client for a forge's REST API: conditional requests (ETag
/// bodies persisted in the ledger database), `Link: rel="next"` pagination,
/// waiting out 429s (`Retry-After`, `RateLimit-Reset`), backing off on 5xx and
/// cut-off answers, and errors that name the repository and what the token
/// needs — never the token. The token is only ever sent to the API's own host
/// (a `next` link elsewhere is refused).
pub struct RestClient {
    http: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<bytes::Bytes>,
    >,
    dialect: Dialect,
    /// `https://gitlab.example.com/api/v4`, without a trailing slash or credentials.
    base: String,
    /// `https://gitlab.example.com`: where `next` links must stay.
    origin: String,
    /// The path part of `base` (`/api/v4`), stripped from cache keys.
    base_path: String,
    token: secrecy::SecretString,
    cache: Arc<dyn HttpCache>,
    pub stats: Arc<Stats>,
    pub backoff: Duration,
    pub max_attempts: u32,
    pub max_wait: Duration,
    pub timeout: Duration,
    pub interrupted: Arc<std::sync::atomic::AtomicBool>,
}

impl RestClient {
    /// `https://gitea.example.com`: the forge's own host, where its pages are.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn new(
        dialect: Dialect,
        api_url: &str,
        token: secrecy::SecretString,
        cache: Arc<dyn HttpCache>,
    ) -> Result<RestClient, ClientError> {
        let (shown, had_userinfo) = strip_userinfo(api_url);
        if had_userinfo {
            tracing::warn!("ignoring the user:password in the API URL {shown}; the token authenticates");
        }
        let base = shown.replacen("<redacted>@", "", 1).trim_end_matches('/').to_string();
        let uri: http::Uri = base.parse().map_err(|_| ClientError::Setup(format!("{base} is not a URL")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(ClientError::Setup(format!("{base} is not an http(s) URL")));
        };
        if !matches!(scheme, "https" | "http") {
            return Err(ClientError::Setup(format!("{base} is not an http(s) URL")));
        }
        let origin = format!("{scheme}://{authority}");
        let base_path = uri.path().trim_end_matches('/').to_string();
        let connector = crate::net::https_connector();
        Ok(RestClient {
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector),
            dialect,
            base,
            origin,
            base_path,
            token,
            cache,
            stats: Arc::new(Stats::default()),
            backoff: Duration::from_millis(500),
            max_attempts: 6,
            max_wait: Duration::from_secs(3600),
            timeout: Duration::from_secs(60),
            interrupted: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    pub fn forge(&self) -> &'static str {
        self.dialect.forge
    }

    /// `path` (`/projects/…?…`, relative to the API root) or a `next` link
    /// (absolute, on the API's host) as an absolute URL; the cache key is the
    /// API-relative path either way.
    fn resolve(&self, repo: &str, path: &str) -> Result<(String, String), ClientError> {
        if path.starts_with("http://") || path.starts_with("https://") {
            let Some(rest) = path.strip_prefix(&self.origin).filter(|r| r.starts_with('/')) else {
                return Err(ClientError::Unexpected {
                    repo: repo.into(),
                    path: strip_userinfo(path).0,
                    message: format!("a next-page link points away from {} (the token is not sent there)", self.origin),
                });
            };
            let key = rest.strip_prefix(&self.base_path).unwrap_or(rest).to_string();
            return Ok((path.to_string(), key));
        }
        let key = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        // A next link given as a host-relative path (`/api/v4/…`).
        let key = match key.strip_prefix(&self.base_path) {
            Some(k) if !self.base_path.is_empty() && k.starts_with('/') => k.to_string(),
            _ => key,
        };
        Ok((format!("{}{key}", self.base), key))
    }

    /// GETs `path` conditionally when a cached body exists; retries 5xx and
    /// timeouts with backoff; waits out rate limits.
    pub async fn get(&self, repo: &str, path: &str, permission: &str) -> Result<Page, ClientError> {
        use http_body_util::BodyExt;
        use secrecy::ExposeSecret;
        let (url, key) = self.resolve(repo, path)?;
        let cached = self.cache.get(&url).map_err(ClientError::Cache)?;
        let forge = self.dialect.forge;
        let mut attempt = 0u32;
        let mut waits = 0u32;
        let mut use_etag = true;
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(ClientError::Interrupted);
            }
            attempt += 1;
            let mut req = http::Request::get(url.as_str())
                .header("user-agent", concat!("git-audit/", env!("CARGO_PKG_VERSION")))
                .header("accept", "application/json")
                .header(self.dialect.auth_header, format!("{}{}", self.dialect.auth_prefix, self.token.expose_secret()));
            if let (true, Some(c)) = (use_etag, &cached) {
                req = req.header(http::header::IF_NONE_MATCH, c.etag.as_str());
            }
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .map_err(|_| ClientError::Setup(format!("cannot build a request for {key}")))?;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = match tokio::time::timeout(self.timeout, self.http.request(req)).await {
                Ok(Ok(r)) => r,
                failed => {
                    let last = match failed {
                        Err(_) => format!("no answer within {} s", self.timeout.as_secs()),
                        Ok(Err(e)) => redact(&e.to_string()),
                        Ok(Ok(_)) => String::new(),
                    };
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Failing { forge, repo: repo.into(), path: key, last });
                    }
                    self.pause(repo, self.retry_delay(attempt), &format!("request failed ({last})")).await;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            self.note_rate_limit(&headers);
            let body = match tokio::time::timeout(self.timeout, response.into_body().collect()).await {
                Ok(Ok(b)) => b.to_bytes().to_vec(),
                _ => {
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Failing { forge, repo: repo.into(), path: key, last: "the answer was cut off".into() });
                    }
                    self.pause(repo, self.retry_delay(attempt), "the response was cut off").await;
                    continue;
                }
            };
            match status {
                StatusCode::NOT_MODIFIED => match &cached {
                    Some(c) => {
                        self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
                        let body = serde_json::from_slice(&c.body)
                            .map_err(|e| ClientError::Cache(format!("cached body for {key} is not JSON: {e}")))?;
                        return Ok(Page { body, next: next_link(&headers).or_else(|| c.next.clone()), not_modified: true });
                    }
                    None => {
                        use_etag = false;
                        continue;
                    }
                },
                s if s.is_success() => {
                    let value: serde_json::Value = match serde_json::from_slice(&body) {
                        Ok(v) => v,
                        Err(e) if attempt < self.max_attempts => {
                            self.pause(repo, self.retry_delay(attempt), &format!("{forge}'s answer was not JSON ({e})")).await;
                            continue;
                        }
                        Err(e) => return Err(ClientError::Unexpected { repo: repo.into(), path: key, message: format!("not JSON: {e}") }),
                    };
                    let next = next_link(&headers);
                    if let Some(etag) = headers.get(http::header::ETAG).and_then(|v| v.to_str().ok()) {
                        self.cache
                            .put(&url, &CachedPage { etag: etag.to_string(), body, next: next.clone() })
                            .map_err(ClientError::Cache)?;
                    }
                    return Ok(Page { body: value, next, not_modified: false });
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(ClientError::Rejected { forge, repo: repo.into(), hint: self.dialect.credentials_hint.into() })
                }
                StatusCode::NOT_FOUND => return Err(ClientError::NotFound { repo: repo.into(), path: key, permission: permission.into() }),
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                    if let Some(wait) = rate_limit_wait(status, &headers) {
                        self.rate_limited(repo, &key, wait, &mut waits).await?;
                        attempt = attempt.saturating_sub(1);
                        continue;
                    }
                    let message = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["message"].as_str().or(v["error"].as_str()).map(str::to_string))
                        .unwrap_or_else(|| "forbidden".into());
                    return Err(ClientError::Forbidden { repo: repo.into(), path: key, message, permission: permission.into() });
                }
                s if s.is_server_error() => {
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Failing { forge, repo: repo.into(), path: key, last: format!("HTTP {s}") });
                    }
                    self.pause(repo, self.retry_delay(attempt), &format!("{forge} answered {s}")).await;
                }
                s => {
                    let message = redact(&String::from_utf8_lossy(&body).chars().take(200).collect::<String>());
                    return Err(ClientError::Unexpected { repo: repo.into(), path: key, message: format!("HTTP {s}: {message}") });
                }
            }
        }
    }

    /// Every page of a list, following `Link: rel="next"`, at most `limit_pages`.
    pub async fn get_all(
        &self,
        repo: &str,
        path: &str,
        permission: &str,
        limit_pages: usize,
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        all_pages(path, limit_pages, |p| async move { self.get(repo, &p, permission).await }).await
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        retry_delay(self.backoff, attempt)
    }

    async fn rate_limited(&self, repo: &str, path: &str, wait: Duration, waits: &mut u32) -> Result<(), ClientError> {
        wait_out(&self.stats, self.dialect.forge, self.max_wait, repo, path, wait, waits).await
    }

    async fn pause(&self, repo: &str, wait: Duration, why: &str) {
        pause(&self.stats, repo, wait, why).await
    }

    /// GitLab's `RateLimit-Remaining`/`RateLimit-Reset`, Gitea's `X-RateLimit-*`.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let num = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let pair = (num("ratelimit-remaining").or(num("x-ratelimit-remaining")), num("ratelimit-reset").or(num("x-ratelimit-reset")));
        if let (Some(rem), Some(reset)) = pair {
            if let Ok(mut r) = self.stats.remaining.lock() {
                *r = Some((rem, reset));
            }
        }
    }
}
