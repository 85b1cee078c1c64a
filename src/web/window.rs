//! A page's window: `?since=&until=&env=` and its filters, as asked and as
//! resolved (with no window asked for, the one that finds the data).

use super::error::WebError;
use crate::facts::DeploymentHistory;
use crate::ledger::Ledger;
use crate::time::Timestamp;

/// The window of a page: `?since=&until=&env=`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct WindowQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub env: Option<String>,
    /// `/compliance`: `violation` or `unverified` (could not verify).
    pub kind: Option<String>,
    /// `/compliance`: one rule id.
    pub rule: Option<String>,
    /// `/deployments`: `failed` (failed or rolled back: what the change failure rate counts).
    pub status: Option<String>,
    /// `/pushes`: `refused` or `accepted`.
    pub decision: Option<String>,
}

pub struct Window {
    pub since: Timestamp,
    pub until: Timestamp,
    pub env: String,
    /// As asked (for the form).
    pub since_text: String,
    pub until_text: String,
    /// Filters (see [`WindowQuery`]).
    pub kind: Option<String>,
    pub rule: Option<String>,
    pub status: Option<String>,
    pub decision: Option<String>,
}

impl WindowQuery {
    /// With no window asked for: the last 90 days when the ledger has entries
    /// in them, else the 90 days up to its newest entry — and a sentence
    /// saying which was chosen.
    pub fn resolve_finding_data(&self, ledger: &Ledger, facts: &DeploymentHistory) -> Result<(Window, Option<String>), WebError> {
        if self.since.is_some() || self.until.is_some() {
            return Ok((self.resolve()?, None));
        }
        let w = self.resolve()?;
        // The newest deployment to the environment (its own time, not when it
        // was synced), else the newest entry.
        let newest_deployment = facts.newest(&w.env);
        let head = ledger.head()?;
        let newest = match (newest_deployment, head.size) {
            (Some(t), _) => Some(t),
            (None, 0) => None,
            (None, n) => ledger.entry(n - 1)?.and_then(|e| Timestamp::parse(&e.time).ok()),
        };
        match newest {
            Some(t) if t < w.since => {
                let day = t.canonical().get(..10).unwrap_or_default().to_string();
                let until = Timestamp::until(&day).map_err(|e| WebError::Failed(e.to_string()))?;
                let since = Timestamp::from_datetime(until.datetime() - chrono::Duration::days(90));
                let chose =
                    format!("Nothing in the last 90 days: showing the 90 days up to the newest data ({day}). Choose another window above.");
                Ok((
                    Window { since_text: since.canonical().get(..10).unwrap_or_default().to_string(), until_text: day, since, until, ..w },
                    Some(chose),
                ))
            }
            Some(_) => Ok((w, Some("Showing the last 90 days.".into()))),
            None => Ok((w, Some("The ledger is empty: nothing recorded yet.".into()))),
        }
    }

    pub fn resolve(&self) -> Result<Window, WebError> {
        let since = Timestamp::since(self.since.as_deref().unwrap_or("90d")).map_err(|e| WebError::BadRequest(e.to_string()))?;
        let until = match self.until.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => Timestamp::until(u).map_err(|e| WebError::BadRequest(e.to_string()))?,
            None => Timestamp::open_end(),
        };
        if until <= since {
            return Err(WebError::BadRequest(format!(
                "the window is empty: until {} is not after since {since}; swap them, or leave until empty for a window open to now",
                self.until.as_deref().unwrap_or_default()
            )));
        }
        let env = self.env.clone().filter(|e| !e.is_empty()).unwrap_or_else(|| "production".into());
        crate::policy::check_environment_pattern(&env).map_err(|e| WebError::BadRequest(format!("env: {e}")))?;
        Ok(Window {
            kind: self.kind.clone().filter(|k| !k.is_empty()),
            rule: self.rule.clone().filter(|k| !k.is_empty()),
            status: self.status.clone().filter(|k| !k.is_empty()),
            decision: self.decision.clone().filter(|k| !k.is_empty()),
            since,
            until,
            env,
            since_text: self.since.clone().unwrap_or_else(|| "90d".into()),
            until_text: self.until.clone().unwrap_or_default(),
        })
    }
}
