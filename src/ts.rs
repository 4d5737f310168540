//! Timestamps: the strict form a webhook `ts` must have, the looser forms `since` accepts, the
//! sortable key both become, and the wall clock as logs and HTTP print it.
//!
//! A message's `ts` is stored exactly as sent, but ordering, `since` and /stats compare instants.
//! So every accepted timestamp is also turned into a *key*: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` in
//! UTC with all nine fraction digits. Keys compare as plain strings in instant order, which lets
//! SQLite sort and index them with its default (byte) collation.
//!
//! Left out on purpose: leap seconds (`:60`), years outside 0000..=9999, lower-case `t`/`z` in a
//! message `ts`. Parsing is hand-written because the accepted grammar is tiny and exact; the `time`
//! crate only checks that the date is a real calendar date and applies UTC offsets.
//! Uses: time.

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// Parses a webhook `ts`: `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, ASCII digits, upper-case `T` and `Z`,
/// a real calendar date and time. Returns the sortable key.
pub fn parse_message_ts(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (dt, rest) = parse_date_time(b, false)?;
    if rest != b"Z" {
        return None;
    }
    Some(key(dt))
}

/// The key of a `ts` stored by the FastAPI service this one replaces, which accepted more than a
/// webhook may send now: `T` or a space between date and time, the time as `HH`, `HH:MM` or
/// `HH:MM:SS`, a fraction of any length after `.` or `,` (digits past the ninth ignored), then
/// `Z`. Anything else keeps its text as its key, so it sorts by its text among the instants.
pub fn legacy_key(s: &str) -> String {
    let parse = || {
        let b = s.strip_suffix('Z')?.as_bytes();
        if b.len() < 13 || !matches!(b[10], b'T' | b' ') {
            return None;
        }
        let date = parse_date(&b[..10])?;
        let (mut minute, mut second, mut nanos, mut rest) = (0, 0, 0, &b[13..]);
        if let [b':', m1, m2, tail @ ..] = rest {
            (minute, rest) = (two_digits(*m1, *m2)?, tail);
            if let [b':', s1, s2, tail @ ..] = rest {
                (second, rest) = (two_digits(*s1, *s2)?, tail);
                if let [b'.' | b',', digits @ ..] = rest {
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return None;
                    }
                    (nanos, rest) = (nanos_of(digits), &[]);
                }
            }
        }
        let time = Time::from_hms_nano(two_digits(b[11], b[12])?, minute, second, nanos).ok()?;
        rest.is_empty()
            .then(|| key(PrimitiveDateTime::new(date, time)))
    };
    parse().unwrap_or_else(|| s.to_string())
}

/// Parses a `since` filter: a date alone (midnight UTC), or a date-time with `Z` or a numeric offset
/// `±HH:MM`. A space where the offset sign should be is read as `+`, because a raw `+` in a query
/// string arrives as a space. Returns the sortable key of the instant, clamped to the key range.
pub fn parse_since(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() == 10 {
        let date = parse_date(b)?;
        return Some(key(PrimitiveDateTime::new(date, Time::MIDNIGHT)));
    }
    let (dt, rest) = parse_date_time(b, true)?;
    let offset = match rest {
        b"Z" | b"z" => UtcOffset::UTC,
        [sign @ (b'+' | b'-' | b' '), h1, h2, b':', m1, m2] => {
            let hours = two_digits(*h1, *h2)? as i8;
            let minutes = two_digits(*m1, *m2)? as i8;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let sign = if *sign == b'-' { -1 } else { 1 };
            UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?
        }
        _ => return None,
    };
    // An offset can push the instant out of 0000..=9999 (past 9999 the calendar itself ends,
    // so the conversion is checked): clamp, so the key still orders right.
    Some(
        match dt.assume_offset(offset).checked_to_offset(UtcOffset::UTC) {
            Some(utc) if utc.year() < 0 => "0000-01-01T00:00:00.000000000Z".to_string(),
            Some(utc) => key(PrimitiveDateTime::new(utc.date(), utc.time())),
            // Past year 9999, where the calendar ends: a key after every real one, so nothing
            // matches.
            None => "9999-12-31T23:59:59.999999999Z~".to_string(),
        },
    )
}

/// The current wall-clock time as RFC 3339 UTC with milliseconds: `2025-01-15T10:00:00.123Z`.
/// Used for log lines and for the `created_at` column.
pub fn now_utc() -> String {
    utc_ms(time::OffsetDateTime::now_utc())
}

/// The time `days` days ago, in `now_utc`'s format (so it compares with `created_at` as text).
pub fn utc_days_ago(days: u64) -> String {
    let days = i64::try_from(days).unwrap_or(i64::MAX).min(3_000_000);
    utc_ms(time::OffsetDateTime::now_utc() - time::Duration::days(days))
}

/// `key`'s form cut to milliseconds.
fn utc_ms(now: time::OffsetDateTime) -> String {
    let key = key(PrimitiveDateTime::new(now.date(), now.time()));
    format!("{}Z", &key[..23])
}

/// Seconds since the Unix epoch now (Standard Webhooks' timestamps are checked against it).
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as a string of digits (how the WhatsApp Cloud API sends a message's time) to a
/// message `ts`, `YYYY-MM-DDTHH:MM:SSZ`; `None` past the year 9999.
pub fn from_unix(s: &str) -> Option<String> {
    let digits = s.len() <= 12 && s.bytes().all(|c| c.is_ascii_digit());
    let secs = s.parse().ok().filter(|_| digits)?;
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    let (date, h, m, sec) = (t.date(), t.hour(), t.minute(), t.second());
    Some(format!("{date}T{h:02}:{m:02}:{sec:02}Z")).filter(|_| date.year() <= 9999)
}

/// The `Date` header value (IMF-fixdate), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date() -> String {
    let now = time::OffsetDateTime::now_utc();
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ((y, month, d), (h, m, s)) = (now.to_calendar_date(), now.to_hms());
    let day = DAYS[now.weekday().number_days_from_monday() as usize];
    let month = MONTHS[u8::from(month) as usize - 1];
    format!("{day}, {d:02} {month} {y:04} {h:02}:{m:02}:{s:02} GMT")
}

/// The sortable key of a UTC date-time.
fn key(dt: PrimitiveDateTime) -> String {
    let ((y, mo, d), (h, mi, s, n)) = (dt.to_calendar_date(), dt.as_hms_nano());
    let mo = u8::from(mo);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{n:09}Z")
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]`, returning the date-time and the unparsed rest.
/// `lenient` also allows a lower-case `t` (for `since`).
fn parse_date_time(b: &[u8], lenient: bool) -> Option<(PrimitiveDateTime, &[u8])> {
    if b.len() < 19 {
        return None;
    }
    let date = parse_date(&b[..10])?;
    let sep_ok = b[10] == b'T' || (lenient && b[10] == b't');
    if !sep_ok || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hour = two_digits(b[11], b[12])?;
    let minute = two_digits(b[14], b[15])?;
    let second = two_digits(b[17], b[18])?;
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let digits = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = nanos_of(&after_dot[..digits]);
        rest = &after_dot[digits..];
    }
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some((PrimitiveDateTime::new(date, time), rest))
}

/// The nanoseconds of a fraction's ASCII digits: the first nine, padded with zeros.
fn nanos_of(digits: &[u8]) -> u32 {
    let padded = digits.iter().chain(&[b'0'; 9]).take(9);
    padded.fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// `YYYY-MM-DD` exactly, as a real calendar date.
fn parse_date(b: &[u8]) -> Option<Date> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::from(two_digits(b[0], b[1])?) * 100 + i32::from(two_digits(b[2], b[3])?);
    let month = Month::try_from(two_digits(b[5], b[6])?).ok()?;
    Date::from_calendar_date(year, month, two_digits(b[8], b[9])?).ok()
}

/// Two ASCII digits as a number; anything else (including non-ASCII digits) is `None`.
fn two_digits(a: u8, b: u8) -> Option<u8> {
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_forms_get_the_key_of_their_instant() {
        for (ts, want) in [
            ("2025-01-15T10:00:00Z", "2025-01-15T10:00:00.000000000Z"),
            ("2025-01-15T10:00Z", "2025-01-15T10:00:00.000000000Z"),
            ("2025-01-15 10:00:00Z", "2025-01-15T10:00:00.000000000Z"),
            ("2025-01-15T10Z", "2025-01-15T10:00:00.000000000Z"),
            ("2025-01-15T10:00:00.5Z", "2025-01-15T10:00:00.500000000Z"),
            (
                "2025-01-15 10:00:00,123456789123Z",
                "2025-01-15T10:00:00.123456789Z",
            ),
            (
                "2024-02-29T23:59:59.000001Z",
                "2024-02-29T23:59:59.000001000Z",
            ),
        ] {
            assert_eq!(legacy_key(ts), want, "{ts}");
        }
        for odd in [
            "2025-01-15T10:00:00",
            "2025-02-30T10:00:00Z",
            "2025-01-15T24:00:00Z",
            "2025-01-15T10:00:00.Z",
            "2025-01-15T10:0Z",
            "2025-01-15x10:00:00Z",
            "garbage Z",
            "2025-01-15T10:00:00+00:00Z",
            "２０２５-01-15T10:00:00Z",
            "",
        ] {
            assert_eq!(legacy_key(odd), odd, "{odd} sorts by its text");
        }
    }

    #[test]
    fn message_ts_accepts_the_strict_form_only() {
        assert_eq!(
            parse_message_ts("2025-01-15T10:00:00Z").as_deref(),
            Some("2025-01-15T10:00:00.000000000Z")
        );
        assert_eq!(
            parse_message_ts("2025-01-15T10:00:00.5Z").as_deref(),
            Some("2025-01-15T10:00:00.500000000Z")
        );
        assert_eq!(
            parse_message_ts("2024-02-29T23:59:59.123456789Z").as_deref(),
            Some("2024-02-29T23:59:59.123456789Z")
        );
        for bad in [
            "",
            "2025-01-15",
            "2025-01-15T10:00:00",
            "2025-01-15T10:00:00z",
            "2025-01-15t10:00:00Z",
            "2025-01-15 10:00:00Z",
            "2025-01-15T10:00:00+00:00",
            "2025-02-30T10:00:00Z",
            "2023-02-29T10:00:00Z",
            "2025-01-15T24:00:00Z",
            "2025-01-15T10:60:00Z",
            "2025-01-15T10:00:60Z",
            "2025-01-15T10:00:00.Z",
            "2025-01-15T10:00:00.1234567890Z",
            "2025-13-01T10:00:00Z",
            "2025-00-01T10:00:00Z",
            "２025-01-15T10:00:00Z",
            "2025-01-15T10:00:00ZZ",
            "+2025-01-15T10:00:00Z",
        ] {
            assert_eq!(parse_message_ts(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn keys_order_by_instant() {
        let a = parse_message_ts("2025-01-15T10:00:00Z");
        let b = parse_message_ts("2025-01-15T10:00:00.5Z");
        let c = parse_message_ts("2025-01-15T10:00:00.05Z");
        assert!(a < c && c < b);
    }

    #[test]
    fn since_accepts_offsets_dates_and_the_space_for_plus() {
        let want = Some("2025-01-15T09:30:00.000000000Z".to_string());
        assert_eq!(parse_since("2025-01-15T15:00:00+05:30"), want);
        assert_eq!(parse_since("2025-01-15T15:00:00 05:30"), want);
        assert_eq!(parse_since("2025-01-15T04:30:00-05:00"), want);
        assert_eq!(parse_since("2025-01-15T09:30:00Z"), want);
        assert_eq!(
            parse_since("2025-01-15").as_deref(),
            Some("2025-01-15T00:00:00.000000000Z")
        );
        assert_eq!(
            parse_since("2025-01-01T00:30:00+01:00").as_deref(),
            Some("2024-12-31T23:30:00.000000000Z")
        );
        for bad in [
            "",
            "yesterday",
            "2025-01-15T10:00",
            "2025-01-15T10:00:00+5:30",
            "2025-02-30",
        ] {
            assert_eq!(parse_since(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn since_offsets_at_their_bounds_and_keys_clamped_to_the_range() {
        let key = |s: &str| parse_since(s);
        assert_eq!(
            key("2025-01-15T10:00:00-05:30").as_deref(),
            Some("2025-01-15T15:30:00.000000000Z")
        );
        assert_eq!(
            key("2025-01-15T23:00:00+23:00").as_deref(),
            Some("2025-01-15T00:00:00.000000000Z")
        );
        assert_eq!(
            key("2025-01-15T10:59:00+00:59").as_deref(),
            Some("2025-01-15T10:00:00.000000000Z")
        );
        for bad in ["2025-01-15T10:00:00+24:00", "2025-01-15T10:00:00+05:60"] {
            assert_eq!(key(bad), None, "{bad}");
        }
        // Lower-case separators are fine in a filter; any other separator is not.
        assert!(key("2025-01-15t10:00:00z").is_some());
        assert_eq!(key("2025-01-15x10:00:00Z"), None);
        // An offset that leaves 0000..=9999 clamps to a key that still orders right.
        assert_eq!(
            key("0000-01-01T00:00:00+01:00").as_deref(),
            Some("0000-01-01T00:00:00.000000000Z")
        );
        assert_eq!(
            key("9999-12-31T23:30:00-01:00").as_deref(),
            Some("9999-12-31T23:59:59.999999999Z~")
        );
        assert_eq!(
            key("0000-06-01T01:00:00+01:00").as_deref(),
            Some("0000-06-01T00:00:00.000000000Z"),
            "year 0 itself is in range"
        );
        assert_eq!(
            key("9999-12-31T22:30:00-01:00").as_deref(),
            Some("9999-12-31T23:30:00.000000000Z"),
            "year 9999 itself is in range"
        );
    }

    #[test]
    fn http_dates_are_imf_fixdates_of_now() {
        let d = http_date();
        let year = time::OffsetDateTime::now_utc().year().to_string();
        assert_eq!(d.len(), 29, "{d}");
        assert!(
            d.ends_with(" GMT") && d[3..5] == *", " && d[12..16] == *year,
            "{d}"
        );
        assert!(
            ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&d[..3]),
            "{d}"
        );
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(
            from_unix("1504902988").as_deref(),
            Some("2017-09-08T20:36:28Z")
        );
        assert_eq!(from_unix("0").as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            from_unix("253402300799").as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        for bad in ["253402300800", "", "-1", "+1", "1.5", " 1", "1e3", "١٢"] {
            assert_eq!(from_unix(bad), None, "{bad}");
        }
    }
}
