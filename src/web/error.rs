//! What a request can fail with, and the status each means: decided here,
//! at the edge, from the error's kind — never from its wording.

use axum::http::StatusCode;

use crate::ledger::LedgerError;
use crate::report::ReportError;

#[derive(Debug)]
pub enum WebError {
    /// What the address names does not exist (a report, an entry, a commit): 404.
    NotFound(String),
    /// The request asks for something that cannot be answered as asked (a
    /// window, a filter, an ambiguous id): 400.
    BadRequest(String),
    /// The ledger could not answer (unreadable, inconsistent): 500.
    Failed(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            WebError::NotFound(m) | WebError::BadRequest(m) | WebError::Failed(m) => m,
        }
    }
}

impl From<LedgerError> for WebError {
    fn from(e: LedgerError) -> WebError {
        match e {
            LedgerError::NoEntry { .. } => WebError::NotFound(e.to_string()),
            e => WebError::Failed(e.to_string()),
        }
    }
}

impl From<ReportError> for WebError {
    fn from(e: ReportError) -> WebError {
        match e {
            ReportError::Ledger(e) => e.into(),
            ReportError::NotFound(m) => WebError::NotFound(m),
            ReportError::Time(e) => WebError::BadRequest(e.to_string()),
            ReportError::Input(m) => WebError::BadRequest(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_follows_the_kind_not_the_wording() {
        let missing: WebError = LedgerError::NoEntry { seq: 9, size: 3 }.into();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let unknown: WebError = ReportError::NotFound("no report `x`".into()).into();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        // Worded like a missing thing, but a bad request: the wording decides nothing.
        let bad: WebError = ReportError::Input("unknown commit-ish `x`: ambiguous".into()).into();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let broken: WebError = LedgerError::Inconsistent { path: "l.db".into(), msg: "the head moved".into() }.into();
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(broken.message().contains("the head moved"));
    }
}
