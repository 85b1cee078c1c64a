//! A polite GitHub REST client over octocrab's transport: conditional requests
//! (ETag bodies persisted in the ledger database), `Link` pagination, waiting
//! out rate limits, backing off on 5xx, and errors that name the repository and
//! the permission — never the token.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, IF_NONE_MATCH};
use http::StatusCode;

pub use crate::forge::rest::{next_link, rate_limit_wait, redact, strip_userinfo, CachedPage, ClientError, HttpCache, Page, Stats};

/// How a sync authenticates.
#[derive(Clone)]
pub enum Auth {
    /// A personal or installation token (from GITHUB_TOKEN / GH_TOKEN).
    Token(secrecy::SecretString),
    /// A GitHub App installation.
    App { app_id: u64, key_pem: secrecy::SecretString, installation_id: u64 },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Auth::Token(<redacted>)"),
            Auth::App { app_id, installation_id, .. } => write!(f, "Auth::App {{ app_id: {app_id}, installation_id: {installation_id} }}"),
        }
    }
}

pub use crate::forge::rest::MAX_RATE_LIMIT_WAITS;

pub struct Client {
    octo: octocrab::Octocrab,
    /// Rooted where GraphQL lives: `https://api.github.com/graphql`, or on
    /// GitHub Enterprise `https://HOST/api/graphql` (not under `/api/v3`).
    graphql: octocrab::Octocrab,
    /// Where GraphQL is asked, as errors name it (no credentials).
    graphql_url: String,
    cache: Arc<dyn HttpCache>,
    pub stats: Arc<Stats>,
    /// Base delay for retries (tests shorten it).
    pub backoff: Duration,
    pub max_attempts: u32,
    /// The longest we wait out a rate limit before giving up.
    pub max_wait: Duration,
    pub interrupted: Arc<std::sync::atomic::AtomicBool>,
}

impl Client {
    pub async fn new(api_url: &str, auth: &Auth, cache: Arc<dyn HttpCache>) -> Result<Client, ClientError> {
        // Credentials in the URL are never used (authentication is the token or
        // App key) and must not reach octocrab, which logs request URLs.
        let (shown, had_userinfo) = strip_userinfo(api_url);
        let api_url = if had_userinfo {
            tracing::warn!("ignoring the user:password in the API URL {shown}; authenticate with GITHUB_TOKEN or a GitHub App");
            shown.replacen("<redacted>@", "", 1)
        } else {
            api_url.to_string()
        };
        let api_url = api_url.trim_end_matches('/');
        let octo = Self::octocrab(api_url, auth)?;
        let graphql_root = api_url.strip_suffix("/v3").unwrap_or(api_url);
        let graphql = Self::octocrab(graphql_root, auth)?;
        Ok(Client {
            octo,
            graphql,
            graphql_url: format!("{graphql_root}/graphql"),
            cache,
            stats: Arc::new(Stats::default()),
            backoff: Duration::from_millis(500),
            max_attempts: 6,
            max_wait: Duration::from_secs(3600),
            interrupted: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    fn octocrab(api_url: &str, auth: &Auth) -> Result<octocrab::Octocrab, ClientError> {
        use secrecy::ExposeSecret;
        let builder =
            octocrab::Octocrab::builder().base_uri(api_url).map_err(|e| ClientError::Setup(format!("bad API URL {api_url}: {e}")))?;
        match auth {
            Auth::Token(t) => builder.personal_token(t.expose_secret().to_string()).build().map_err(|e| ClientError::Setup(e.to_string())),
            Auth::App { app_id, key_pem, installation_id } => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose_secret().as_bytes())
                    .map_err(|_| ClientError::Setup("the GitHub App key is not an RSA private key in PEM form".into()))?;
                let app = builder.app((*app_id).into(), key).build().map_err(|e| ClientError::Setup(e.to_string()))?;
                app.installation((*installation_id).into())
                    .map_err(|e| ClientError::Setup(format!("GitHub App installation {installation_id}: {e}")))
            }
        }
    }

    /// POSTs a GraphQL query; waits out rate limits (GraphQL reports an
    /// exhausted limit as HTTP 200 with a `RATE_LIMITED` error) and retries 5xx.
    pub async fn graphql(&self, repo: &str, query: &str, variables: serde_json::Value) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::json!({"query": query, "variables": variables});
        let mut attempt = 0u32;
        let mut waits = 0u32;
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(ClientError::Interrupted);
            }
            attempt += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = match self.graphql._post("/graphql", Some(&body)).await {
                Ok(r) => r,
                Err(e) => {
                    let last = redact(&e.to_string());
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Unavailable { repo: repo.into(), path: "graphql".into(), last });
                    }
                    self.pause(repo, self.retry_delay(attempt), &format!("GraphQL request failed ({last})")).await;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            self.note_rate_limit(&headers);
            let bytes = match http_body_util::BodyExt::collect(response.into_body()).await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(e) => {
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Unavailable { repo: repo.into(), path: "graphql".into(), last: redact(&e.to_string()) });
                    }
                    self.pause(repo, self.retry_delay(attempt), "the response was cut off").await;
                    continue;
                }
            };
            if status == StatusCode::UNAUTHORIZED {
                return Err(ClientError::BadCredentials {
                    repo: repo.into(),
                    hint: "\nHint: check GITHUB_TOKEN / GH_TOKEN (expired or revoked?) or the GitHub App settings".into(),
                });
            }
            if status == StatusCode::NOT_FOUND {
                return Err(ClientError::GraphqlMissing { repo: repo.into(), url: self.graphql_url.clone() });
            }
            if status.is_server_error() {
                if attempt >= self.max_attempts {
                    return Err(ClientError::Unavailable { repo: repo.into(), path: "graphql".into(), last: format!("HTTP {status}") });
                }
                self.pause(repo, self.retry_delay(attempt), &format!("GitHub answered {status}")).await;
                continue;
            }
            if !status.is_success() {
                if let Some(wait) = rate_limit_wait(status, &headers) {
                    self.rate_limited(repo, "graphql", wait, &mut waits).await?;
                    attempt = attempt.saturating_sub(1);
                    continue;
                }
            }
            let value: serde_json::Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                // A 200 whose body is not JSON was cut off or mangled on the way: ask again.
                Err(e) if status.is_success() && attempt < self.max_attempts => {
                    self.pause(repo, self.retry_delay(attempt), &format!("GitHub's answer was not JSON ({e})")).await;
                    continue;
                }
                Err(e) => {
                    return Err(ClientError::Unexpected { repo: repo.into(), path: "graphql".into(), message: format!("not JSON: {e}") })
                }
            };
            if let Some(errors) = value["errors"].as_array().filter(|e| !e.is_empty()) {
                if errors.iter().any(|e| e["type"] == "RATE_LIMITED") {
                    let wait = rate_limit_wait(StatusCode::FORBIDDEN, &headers).unwrap_or(Duration::from_secs(60));
                    self.rate_limited(repo, "graphql", wait, &mut waits).await?;
                    attempt = attempt.saturating_sub(1);
                    continue;
                }
                if errors.iter().any(|e| e["type"] == "NOT_FOUND") {
                    return Err(ClientError::NotFound {
                        repo: repo.into(),
                        path: "graphql".into(),
                        permission: "pull_requests: read".into(),
                    });
                }
                let message = errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ");
                return Err(ClientError::Unexpected { repo: repo.into(), path: "graphql".into(), message });
            }
            if !status.is_success() {
                return Err(ClientError::Unexpected { repo: repo.into(), path: "graphql".into(), message: format!("HTTP {status}") });
            }
            return Ok(value["data"].clone());
        }
    }

    /// GETs `path` (relative to the API root, with its query), conditionally when
    /// a cached body exists. Retries 5xx/timeouts with backoff; waits out rate limits.
    pub async fn get(&self, repo: &str, path: &str, permission: &str) -> Result<Page, ClientError> {
        let cached = self.cache.get(path).map_err(ClientError::Cache)?;
        let mut attempt = 0u32;
        let mut waits = 0u32;
        let mut use_etag = true;
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(ClientError::Interrupted);
            }
            attempt += 1;
            let mut headers = HeaderMap::new();
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
            headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
            if let (true, Some(c)) = (use_etag, &cached) {
                if let Ok(v) = HeaderValue::from_str(&c.etag) {
                    headers.insert(IF_NONE_MATCH, v);
                }
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let result = self.octo._get_with_headers(path, Some(headers)).await;
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    // Connection errors and timeouts: back off and try again.
                    let last = redact(&e.to_string());
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Unavailable { repo: repo.into(), path: path.into(), last });
                    }
                    self.pause(repo, self.retry_delay(attempt), &format!("request failed ({last})")).await;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            self.note_rate_limit(&headers);
            let body = match http_body_util::BodyExt::collect(response.into_body()).await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(e) => {
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Unavailable { repo: repo.into(), path: path.into(), last: redact(&e.to_string()) });
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
                            .map_err(|e| ClientError::Cache(format!("cached body for {path} is not JSON: {e}")))?;
                        return Ok(Page { body, next: next_link(&headers).or_else(|| c.next.clone()), not_modified: true });
                    }
                    // A 304 we cannot answer from the cache: ask again, unconditionally.
                    None => {
                        use_etag = false;
                        continue;
                    }
                },
                s if s.is_success() => {
                    let value: serde_json::Value = match serde_json::from_slice(&body) {
                        Ok(v) => v,
                        // Cut off or mangled on the way: ask again (nothing was cached).
                        Err(e) if attempt < self.max_attempts => {
                            self.pause(repo, self.retry_delay(attempt), &format!("GitHub's answer was not JSON ({e})")).await;
                            continue;
                        }
                        Err(e) => {
                            return Err(ClientError::Unexpected { repo: repo.into(), path: path.into(), message: format!("not JSON: {e}") })
                        }
                    };
                    let next = next_link(&headers);
                    if let Some(etag) = headers.get(http::header::ETAG).and_then(|v| v.to_str().ok()) {
                        self.cache
                            .put(path, &CachedPage { etag: etag.to_string(), body, next: next.clone() })
                            .map_err(ClientError::Cache)?;
                    }
                    return Ok(Page { body: value, next, not_modified: false });
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(ClientError::BadCredentials {
                        repo: repo.into(),
                        hint: "\nHint: check GITHUB_TOKEN / GH_TOKEN (expired or revoked?) or the GitHub App settings".into(),
                    })
                }
                StatusCode::NOT_FOUND => {
                    return Err(ClientError::NotFound { repo: repo.into(), path: path.into(), permission: permission.into() })
                }
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                    if let Some(wait) = rate_limit_wait(status, &headers) {
                        self.rate_limited(repo, path, wait, &mut waits).await?;
                        attempt = attempt.saturating_sub(1);
                        continue;
                    }
                    let message = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "forbidden".into());
                    return Err(ClientError::Forbidden { repo: repo.into(), path: path.into(), message, permission: permission.into() });
                }
                s if s.is_server_error() => {
                    if attempt >= self.max_attempts {
                        return Err(ClientError::Unavailable { repo: repo.into(), path: path.into(), last: format!("HTTP {s}") });
                    }
                    self.pause(repo, self.retry_delay(attempt), &format!("GitHub answered {s}")).await;
                }
                s => {
                    let message = String::from_utf8_lossy(&body).chars().take(200).collect::<String>();
                    return Err(ClientError::Unexpected { repo: repo.into(), path: path.into(), message: format!("HTTP {s}: {message}") });
                }
            }
        }
    }

    /// Every page of a list, following `Link: rel="next"`.
    pub async fn get_all(
        &self,
        repo: &str,
        path: &str,
        permission: &str,
        limit_pages: usize,
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        crate::forge::rest::all_pages(path, limit_pages, |p| async move { self.get(repo, &p, permission).await }).await
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        crate::forge::rest::retry_delay(self.backoff, attempt)
    }

    /// Waits out a rate limit within bounds (see [`crate::forge::rest::wait_out`]).
    async fn rate_limited(&self, repo: &str, path: &str, wait: Duration, waits: &mut u32) -> Result<(), ClientError> {
        crate::forge::rest::wait_out(&self.stats, "GitHub", self.max_wait, repo, path, wait, waits).await
    }

    async fn pause(&self, repo: &str, wait: Duration, why: &str) {
        crate::forge::rest::pause(&self.stats, repo, wait, why).await
    }

    fn note_rate_limit(&self, headers: &HeaderMap) {
        let num = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if let (Some(rem), Some(reset)) = (num("x-ratelimit-remaining"), num("x-ratelimit-reset")) {
            if let Ok(mut r) = self.stats.remaining.lock() {
                *r = Some((rem, reset));
            }
        }
    }
}
