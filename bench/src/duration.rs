//! Durations on the command line: `500ms`, `2s`, `3m`, `1h`, or `hh:mm:ss`.

use std::time::Duration;

/// Parses `text` as a duration.
///
/// Accepted forms: a whole number with a unit (`ms`, `s`, `m`, `h`: `500ms`, `2s`, `3m`, `1h`), or
/// `hh:mm:ss` with minutes and seconds below 60 (`00:01:30`, `12:00:00`). Surrounding spaces are
/// ignored; nothing else is (no fractions, no bare numbers, no negative values).
///
/// # Errors
/// A message naming the text and the accepted forms.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use pnet_mesh_bench::duration::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("00:01:30"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("2").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let invalid = |why: &str| {
        format!("invalid duration `{text}`: {why} (use e.g. 500ms, 2s, 3m, 1h or hh:mm:ss)")
    };
    if t.contains(':') {
        let parts: Vec<&str> = t.split(':').collect();
        let [h, m, s] = parts.as_slice() else {
            return Err(invalid("expected hh:mm:ss"));
        };
        let h = number(h).ok_or_else(|| invalid("hours are not a whole number"))?;
        let m = number(m).ok_or_else(|| invalid("minutes are not a whole number"))?;
        let s = number(s).ok_or_else(|| invalid("seconds are not a whole number"))?;
        if m >= 60 || s >= 60 {
            return Err(invalid("minutes and seconds must be below 60"));
        }
        let secs = h
            .checked_mul(3600)
            .and_then(|x| x.checked_add(m * 60 + s))
            .ok_or_else(|| invalid("too long"))?;
        return Ok(Duration::from_secs(secs));
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| invalid("missing unit"))?;
    let (digits, unit) = t.split_at(split);
    let n = number(digits).ok_or_else(|| invalid("expected a whole number before the unit"))?;
    let too_long = || invalid("too long");
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        "h" => n
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        _ => Err(invalid("unknown unit")),
    }
}

/// A non-empty run of ASCII digits as a `u64`.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn clock_form() {
        assert_eq!(parse_duration("00:00:05"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("00:01:30"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("01:02:03"), Ok(Duration::from_secs(3723)));
        assert_eq!(
            parse_duration("100:00:00"),
            Ok(Duration::from_secs(360_000))
        );
        assert_eq!(parse_duration("0:0:1"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2",
            "s",
            "ms",
            "2 s",
            "1.5s",
            "-2s",
            "+2s",
            "2sec",
            "2S",
            "5us",
            "01:30",
            "1:2:3:4",
            "00:60:00",
            "00:00:60",
            "aa:00:00",
            "00::00",
            "00:00:-1",
            "18446744073709551616s",
            "18446744073709551615h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
