//! HTTP client plumbing shared by the remote adapters (the OpenAI-compatible embedder, Qdrant, Weaviate).
//!
//! - [`client`]: a `reqwest` client with rustls over ring, a user agent, a timeout, and no proxy for loopback hosts;
//! - [`retrying`]: one request retried with exponential backoff that honours `Retry-After`, waiting through a
//!   caller-supplied sleep (adapters pass their injected `Clock`, so tests never wait);
//! - [`parse_retry_after`], [`is_loopback`], [`error_chain`], [`display_url`], [`shorten`], [`jitter`].
//!
//! It knows nothing of the domain: policies come in as closures, errors are the caller's type.

use std::error::Error as StdError;
use std::fmt::Display;
use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

pub use reqwest;
use reqwest::Url;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How one attempt at a request failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another attempt (429, 5xx, 408, a connection error, a timeout); `retry_after` is the server's
    /// `Retry-After`, if it sent one.
    Retryable {
        /// What went wrong, returned when attempts run out.
        error: E,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Final: asking again would get the same answer.
    Fatal(E),
}

impl<E> Failure<E> {
    /// The error, retryable or not: for probes that try once (`health`).
    pub fn into_error(self) -> E {
        match self {
            Self::Retryable { error, .. } | Self::Fatal(error) => error,
        }
    }
}

/// Builds the HTTP client every remote adapter uses for `endpoint`.
///
/// Installs ring as rustls's process-wide crypto provider unless one is installed already (reqwest is built without
/// a provider of its own, see the workspace manifest). A loopback endpoint is never reached through
/// `HTTP(S)_PROXY`: a proxy would connect to its own loopback, not ours, and users rarely think to list it in
/// `NO_PROXY`.
///
/// # Errors
/// The message of reqwest's error (with its causes) when the client cannot be built.
pub fn client(endpoint: &Url, timeout: Duration) -> Result<reqwest::Client, String> {
    // Fails only when another provider is installed already, which is fine: reqwest then uses that one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(timeout).user_agent(concat!("colstore/", env!("CARGO_PKG_VERSION")));
    if is_loopback(endpoint) {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| error_chain(&e.without_url()))
}

/// Runs `attempt` until it succeeds, fails fatally, or `delay` says attempts are used up.
///
/// `attempt` gets the attempt number (1 for the first try). `delay(n, random)` is the backoff before retry `n`
/// (`None` = give up), usually `RetryPolicy::delay`; a server's `Retry-After` replaces the backoff but is capped at
/// `max_wait`. `sleep` waits (the caller's clock). `what` names the request in the warnings logged before each retry.
///
/// # Errors
/// The fatal error, or the last retryable one when attempts are used up.
pub async fn retrying<T, E, A, AF, S, SF>(
    what: &str,
    delay: impl Fn(u32, u64) -> Option<Duration>,
    max_wait: Duration,
    sleep: S,
    mut attempt: A,
) -> Result<T, E>
where
    E: Display,
    A: FnMut(u32) -> AF,
    AF: Future<Output = Result<T, Failure<E>>>,
    S: Fn(Duration) -> SF,
    SF: Future<Output = ()>,
{
    let mut n = 1u32;
    loop {
        let (error, retry_after) = match attempt(n).await {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retryable { error, retry_after }) => (error, retry_after),
        };
        let Some(backoff) = delay(n, jitter()) else {
            tracing::warn!(attempts = n, error = %error, "{what} failed; giving up");
            return Err(error);
        };
        // The server knows best when it can take more, but we never wait longer than the policy's maximum.
        let wait = retry_after.map_or(backoff, |d| d.min(max_wait));
        tracing::warn!(attempt = n, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), error = %error, "{what} failed; retrying");
        sleep(wait).await;
        n += 1;
    }
}

/// The `Retry-After` of a response, relative to `now_millis` (milliseconds since the Unix epoch).
pub fn retry_after(headers: &HeaderMap, now_millis: i64) -> Option<Duration> {
    headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now_millis))
}

/// A `Retry-After` value: delay seconds (`120`) or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`), relative to
/// `now_millis`. A date in the past means "now"; anything else unparseable is ignored.
pub fn parse_retry_after(value: &str, now_millis: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Not allowed by RFC 9110, but some servers send fractions.
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = parse_imf_fixdate(value)?;
    Some(Duration::from_millis(u64::try_from(at.saturating_sub(now_millis)).unwrap_or(0)))
}

/// Milliseconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP-date form senders
/// MUST generate (RFC 9110 §5.6.7). The obsolete RFC 850 and asctime forms are not accepted.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = s.split_ascii_whitespace();
    let weekday = parts.next()?;
    if weekday.len() != 4 || !weekday.ends_with(',') {
        return None;
    }
    let day: i64 = parts.next()?.parse().ok()?;
    let month = MONTHS.iter().position(|m| Some(*m) == parts.clone().next())? as i64 + 1;
    parts.next();
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&sec) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + h) * 60 + m) * 60_000 + sec * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `url` names this machine: `localhost` (and `*.localhost`), `127.0.0.0/8` or `::1`.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// An error and its sources, `: `-separated (reqwest's top-level message alone is often just "error sending request").
pub fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// `url` for messages: without user name and password.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Setting them fails only for URLs that cannot have credentials, which then have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// `message` cut to at most `max_chars` characters (an ellipsis marks the cut), with `secret` masked when the server
/// echoes it.
pub fn shorten(message: &str, max_chars: usize, secret: Option<&str>) -> String {
    let mut message = message.trim().to_owned();
    if let Some(secret) = secret.filter(|k| !k.is_empty()) {
        message = message.replace(secret, "<redacted>");
    }
    if message.chars().count() > max_chars {
        message = message.chars().take(max_chars).chain("…".chars()).collect();
    }
    message
}

/// A uniformly random `u64` for the backoff jitter, from std's randomly keyed hasher (no RNG crate needed).
pub fn jitter() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO), "the past means now");
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 UTC", now), None);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), None);
    }

    #[test]
    fn imf_fixdate_matches_known_instants() {
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_imf_fixdate("Mon, 01 Jan 2024 00:00:00 GMT"), Some(1_704_067_200_000));
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:30:05 GMT"), Some(1_709_209_805_000));
        assert_eq!(parse_imf_fixdate("Thu, 29 Foo 2024 12:30:05 GMT"), None);
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:30 GMT"), None);
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:30:05:01 GMT"), None);
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        let loopback = |u: &str| is_loopback(&Url::parse(u).unwrap());
        assert!(loopback("http://localhost:11434/v1/embeddings"));
        assert!(loopback("http://LOCALHOST./v1"));
        assert!(loopback("http://127.0.0.1:8080/v1"));
        assert!(loopback("http://127.8.9.10/v1"));
        assert!(loopback("http://[::1]:8080/v1"));
        assert!(!loopback("https://api.openai.com/v1"));
        assert!(!loopback("http://10.0.0.1/v1"));
        assert!(!loopback("http://notlocalhost/v1"));
    }

    #[test]
    fn urls_are_shown_without_credentials_and_messages_are_shortened_and_masked() {
        assert_eq!(display_url(&Url::parse("https://user:pw@example.com:6333/x").unwrap()), "https://example.com:6333/x");
        assert_eq!(shorten("  bad key sk-1  ", 100, Some("sk-1")), "bad key <redacted>");
        assert_eq!(shorten("abcdef", 3, None), "abc…");
        assert_eq!(shorten("abc", 3, Some("")), "abc");
    }

    #[test]
    fn retrying_waits_as_told_and_stops_when_attempts_run_out_or_on_a_fatal_error() {
        let waits = RefCell::new(Vec::new());
        let sleep = |d: Duration| {
            waits.borrow_mut().push(d);
            std::future::ready(())
        };
        let delay = |n: u32, _: u64| (n < 3).then(|| Duration::from_secs(u64::from(n)));
        // Two retryable failures (the second with a Retry-After above the cap), then success.
        let calls = Cell::new(0);
        let got: Result<u32, String> = futures::executor::block_on(retrying("test", delay, Duration::from_secs(5), sleep, |n| {
            calls.set(n);
            std::future::ready(match n {
                1 => Err(Failure::Retryable { error: "503".to_owned(), retry_after: None }),
                2 => Err(Failure::Retryable { error: "429".to_owned(), retry_after: Some(Duration::from_secs(60)) }),
                _ => Ok(n),
            })
        }));
        assert_eq!(got, Ok(3));
        assert_eq!(*waits.borrow(), [Duration::from_secs(1), Duration::from_secs(5)], "backoff, then Retry-After capped");

        waits.borrow_mut().clear();
        let always: Result<u32, String> = futures::executor::block_on(retrying("test", delay, Duration::from_secs(5), sleep, |n| {
            std::future::ready(Err(Failure::Retryable { error: format!("try {n}"), retry_after: None }))
        }));
        assert_eq!(always, Err("try 3".to_owned()), "the last error once attempts are used up");
        assert_eq!(waits.borrow().len(), 2);

        waits.borrow_mut().clear();
        let fatal: Result<u32, String> = futures::executor::block_on(retrying("test", delay, Duration::from_secs(5), sleep, |_| {
            std::future::ready(Err(Failure::Fatal("401".to_owned())))
        }));
        assert_eq!(fatal, Err("401".to_owned()));
        assert!(waits.borrow().is_empty(), "a fatal error is not retried");
    }
}
