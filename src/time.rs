//! One timestamp type. Its canonical text form — RFC 3339 in UTC with exactly
//! three fractional digits, `2026-07-01T00:00:00.000Z` — is what ledger entries
//! store and hash, and what every time comparison in SQL uses, so text order is
//! time order. (Mixing forms was a bug: `…00.123Z` sorts before `…00Z` because
//! `.` < `Z`, which dropped entries in the first second of a report window.)

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, SubsecRound, Utc};

/// An instant, at millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// Text that is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time: use 90d, 12h, 2026-07-01 or an RFC 3339 time such as 2026-07-01T12:00:00Z")]
pub struct TimeError(pub String);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().trunc_subsecs(3))
    }

    pub fn from_datetime(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t.trunc_subsecs(3))
    }

    /// Any RFC 3339 time (GitHub's `…Z`, an offset, the canonical form).
    pub fn parse(s: &str) -> Result<Timestamp, TimeError> {
        DateTime::parse_from_rfc3339(s.trim()).map(|t| Timestamp::from_datetime(t.to_utc())).map_err(|_| TimeError(s.to_string()))
    }

    /// The start of a window (inclusive): `90d` and `12h` before now (to the
    /// second), the start of a date, or an RFC 3339 time.
    pub fn since(spec: &str) -> Result<Timestamp, TimeError> {
        let s = spec.trim();
        let ago = |d: Option<Duration>| {
            d.and_then(|d| Utc::now().checked_sub_signed(d)).map(|t| Timestamp(t.trunc_subsecs(0))).ok_or_else(|| TimeError(spec.into()))
        };
        if let Some(n) = s.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
            return ago(Duration::try_days(n));
        }
        if let Some(n) = s.strip_suffix('h').and_then(|n| n.parse::<i64>().ok()) {
            return ago(Duration::try_hours(n));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Timestamp(d.and_hms_opt(0, 0, 0).ok_or_else(|| TimeError(spec.into()))?.and_utc()));
        }
        Timestamp::parse(s).map_err(|_| TimeError(spec.to_string()))
    }

    /// The end of a window (exclusive): a date means the end of that whole day.
    pub fn until(spec: &str) -> Result<Timestamp, TimeError> {
        if let Ok(d) = NaiveDate::parse_from_str(spec.trim(), "%Y-%m-%d") {
            let next = d.succ_opt().ok_or_else(|| TimeError(spec.into()))?;
            return Ok(Timestamp(next.and_hms_opt(0, 0, 0).ok_or_else(|| TimeError(spec.into()))?.and_utc()));
        }
        Timestamp::since(spec)
    }

    /// An end that nothing reaches (a window open to the future).
    pub fn open_end() -> Timestamp {
        Timestamp(
            NaiveDate::from_ymd_opt(9999, 12, 31)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// The canonical text form (stored, hashed, compared).
    pub fn canonical(&self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub fn datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// True for the far end of [`Timestamp::open_end`].
    pub fn is_open_end(&self) -> bool {
        *self >= Timestamp::open_end()
    }
}

/// For people: RFC 3339, fractional digits only when there are any.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// `90s`, `15m`, `1h`, `2d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    if secs == 0 {
        return Err("the interval must be more than zero".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_sorts_as_time() -> Result<(), TimeError> {
        let a = Timestamp::parse("2026-07-01T00:00:00Z")?;
        let b = Timestamp::parse("2026-07-01T00:00:00.123Z")?;
        let c = Timestamp::parse("2026-07-01T02:00:00.5+02:00")?;
        assert!(a < b && b < c);
        assert_eq!(a.canonical(), "2026-07-01T00:00:00.000Z");
        assert!(a.canonical() < b.canonical(), "text order is time order");
        assert_eq!(c.canonical(), "2026-07-01T00:00:00.500Z");
        assert_eq!(a.to_string(), "2026-07-01T00:00:00Z");
        Ok(())
    }

    #[test]
    fn windows() -> Result<(), TimeError> {
        assert_eq!(Timestamp::since("2026-07-01")?.canonical(), "2026-07-01T00:00:00.000Z");
        assert_eq!(Timestamp::until("2026-07-01")?.canonical(), "2026-07-02T00:00:00.000Z");
        assert!(Timestamp::since("90d")? < Timestamp::now());
        assert!(Timestamp::open_end().is_open_end());
        assert!(Timestamp::since("yesterday").is_err());
        assert!(Timestamp::since("99999999999d").is_err());
        Ok(())
    }
}
