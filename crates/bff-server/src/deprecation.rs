//! Telling clients that what they use is going away: RFC 9745
//! `Deprecation`, RFC 8594 `Sunset` and a `Link` to the migration notes,
//! from configuration ([`Notice`]). Used for an API version a BFF still
//! serves but will retire (partner `v1`) and for old app versions
//! (mobile's `X-App-Version` policy).

use axum::http::{HeaderName, HeaderValue, header};
use serde::{Deserialize, Serialize};

/// One deprecation: since when, until when it is served, where to read
/// what to do. Dates are `YYYY-MM-DD` (midnight UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// When it was deprecated (the `Deprecation` date).
    pub since: String,
    /// When it stops being served (the `Sunset` date).
    pub sunset: String,
    /// The migration notes (`Link: <...>; rel="deprecation"`).
    pub link: String,
}

impl Notice {
    /// Problems that make this notice unusable (each `key: problem`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let since = unix_seconds(&self.since);
        let sunset = unix_seconds(&self.sunset);
        if since.is_none() {
            problems.push(format!("since: `{}` is not a YYYY-MM-DD date", self.since));
        }
        if sunset.is_none() {
            problems.push(format!("sunset: `{}` is not a YYYY-MM-DD date", self.sunset));
        }
        if let (Some(since), Some(sunset)) = (since, sunset)
            && sunset < since
        {
            problems.push("sunset: before `since`".to_owned());
        }
        if !(self.link.starts_with("https://")
            || self.link.starts_with("http://")
            || self.link.starts_with('/'))
            || self.link.contains(['<', '>', '"', ' '])
        {
            problems.push(format!("link: `{}` is not a URL", self.link));
        }
        problems
    }

    /// `Deprecation: @<seconds>`, `Sunset: <HTTP-date>` and
    /// `Link: <notes>; rel="deprecation"` (a valid notice; see [`Notice::problems`]).
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::with_capacity(3);
        if let Some(since) = unix_seconds(&self.since)
            && let Ok(value) = HeaderValue::from_str(&format!("@{since}"))
        {
            headers.push((HeaderName::from_static("deprecation"), value));
        }
        if let Some(sunset) = unix_seconds(&self.sunset) {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(sunset);
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                headers.push((HeaderName::from_static("sunset"), value));
            }
        }
        if let Ok(value) = HeaderValue::from_str(&format!("<{}>; rel=\"deprecation\"", self.link)) {
            headers.push((header::LINK, value));
        }
        headers
    }
}

/// `YYYY-MM-DD` as seconds since the Unix epoch (midnight UTC).
fn unix_seconds(date: &str) -> Option<u64> {
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day): (i64, i64, i64) = (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if !(1970..=9999).contains(&year) || !(1..=days_in_month).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_rfc_9745_and_rfc_8594_headers() {
        let notice = Notice {
            since: "2026-12-01".to_owned(),
            sunset: "2027-06-30".to_owned(),
            link: "https://developer.example.com/partner/v2-migration".to_owned(),
        };
        assert!(notice.problems().is_empty());
        let headers: Vec<(String, String)> = notice
            .headers()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                ("deprecation".to_owned(), "@1796083200".to_owned()),
                ("sunset".to_owned(), "Wed, 30 Jun 2027 00:00:00 GMT".to_owned()),
                (
                    "link".to_owned(),
                    "<https://developer.example.com/partner/v2-migration>; rel=\"deprecation\"".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn bad_dates_and_links_are_named() {
        let notice =
            Notice { since: "2027-02-30".to_owned(), sunset: "soon".to_owned(), link: "x y".to_owned() };
        let problems = notice.problems().join("; ");
        assert!(
            problems.contains("since") && problems.contains("sunset") && problems.contains("link"),
            "{problems}"
        );
        assert_eq!(unix_seconds("1970-01-01"), Some(0));
        assert_eq!(unix_seconds("2000-03-01"), Some(951_868_800));
    }
}
