//! Posting one request (hyper over rustls, the stack the GitHub client already
//! uses). Errors never carry the URL: it is a credential.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds (429, 503).
    pub retry_after: Option<u64>,
}

pub struct Poster {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for Poster {
    fn default() -> Poster {
        // Without system roots, https sinks fail with a certificate error (plain http still works).
        let connector = crate::net::https_connector();
        Poster { client: Client::builder(TokioExecutor::new()).build(connector) }
    }
}

impl Poster {
    /// POSTs `body` to `url`; an error says what went wrong without the URL.
    pub async fn post(&self, url: &str, headers: &[(String, String)], body: Vec<u8>, timeout: Duration) -> Result<Answer, String> {
        let uri: http::Uri = url.parse().map_err(|_| "the sink's URL is not a valid URL".to_string())?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err("the sink's URL must be https://HOST/… (or http://)".into());
        }
        let mut req = http::Request::post(uri).header("user-agent", concat!("git-audit/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| format!("cannot build the request: {e}"))?;
        let response = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => return Err(format!("no answer within {} s", timeout.as_secs_f32())),
            Ok(Err(e)) => return Err(redact(url, &describe(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        // Read (and drop) the body so the connection can be reused, within the same budget.
        let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
        Ok(Answer { status, retry_after })
    }
}

impl Poster {
    /// GETs `url` (a JWKS document, an ID token); the body as text, at most
    /// 1 MiB; an error says what went wrong without the URL.
    pub async fn get(&self, url: &str, headers: &[(String, String)], timeout: Duration) -> Result<(u16, String), String> {
        let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err("the URL must be https://HOST/… (or http://)".into());
        }
        let mut req = http::Request::get(uri).header("user-agent", concat!("git-audit/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::new())).map_err(|e| format!("cannot build the request: {e}"))?;
        let response = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => return Err(format!("no answer within {} s", timeout.as_secs_f32())),
            Ok(Err(e)) => return Err(redact(url, &describe(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let limited = http_body_util::Limited::new(response.into_body(), 1 << 20);
        let body = match tokio::time::timeout(timeout, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Err(format!("cannot read the answer: {e}")),
            Err(_) => return Err(format!("no whole answer within {} s", timeout.as_secs_f32())),
        };
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// GETs `url` from synchronous code (its own small runtime).
pub fn get_blocking(url: &str, headers: &[(String, String)], timeout: Duration) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("no runtime: {e}"))?;
    rt.block_on(async { Poster::default().get(url, headers, timeout).await })
}

/// An error and its causes, one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Takes the URL (and its path and query, the secret parts) out of a message.
fn redact(url: &str, text: &str) -> String {
    let mut out = text.replace(url, "<sink url>");
    if let Ok(uri) = url.parse::<http::Uri>() {
        if let Some(pq) = uri.path_and_query().map(|p| p.as_str()).filter(|p| p.len() > 1) {
            out = out.replace(pq, "/<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_the_url_and_its_path() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXX";
        let t = super::redact(url, &format!("error sending {url}: to /services/T000/B000/XXXX failed"));
        assert!(!t.contains("XXXX"), "{t}");
    }
}
