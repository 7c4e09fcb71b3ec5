//! RFC 3339 `date-time` (the timestamps of EIP-4361 and of credentials): a strict
//! parser to Unix seconds and a formatter (UTC, whole seconds, `Z`).

use crate::error::{Error, ProofReason, Result};

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_days(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(unix: u64) -> String {
    let secs = unix as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

/// Parses an RFC 3339 `date-time` (`2024-05-01T12:00:00Z`, `…T12:00:00.123+02:00`) to
/// Unix seconds (fractions are dropped). `T`/`Z` may be lowercase, as RFC 3339 allows;
/// a leap second (`:60`) is read as the next second.
pub fn parse(text: &str) -> Result<i64> {
    let bad = || Error::proof(ProofReason::Malformed, format!("{text:?} is not an RFC 3339 date-time"));
    let s = text.as_bytes();
    let field = |at, n| digits(s, at, n).ok_or_else(bad);
    let sep = |at: usize, c: &[u8]| s.get(at).filter(|b| c.contains(b)).map(|_| ()).ok_or_else(bad);
    let year = i64::from(field(0, 4)?);
    sep(4, b"-")?;
    let month = field(5, 2)?;
    sep(7, b"-")?;
    let day = field(8, 2)?;
    sep(10, b"Tt")?;
    let hour = field(11, 2)?;
    sep(13, b":")?;
    let min = field(14, 2)?;
    sep(16, b":")?;
    let sec = field(17, 2)?;
    let mut at = 19;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return Err(bad());
        }
    }
    let offset = match s.get(at) {
        Some(b'Z' | b'z') if at + 1 == s.len() => 0,
        Some(&c @ (b'+' | b'-')) if at + 6 == s.len() => {
            sep(at + 3, b":")?;
            let (oh, om) = (field(at + 1, 2)?, field(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let o = i64::from(oh * 3600 + om * 60);
            if c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) || day == 0 || day > month_days(year, month) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_values() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse("2000-02-29T12:34:56Z").unwrap(), 951_827_696);
        assert_eq!(parse("2021-12-07T18:28:18.807Z").unwrap(), 1_638_901_698);
        assert_eq!(parse("2021-12-07T20:28:18+02:00").unwrap(), 1_638_901_698);
        assert_eq!(parse("2021-12-07t16:28:18-02:00").unwrap(), 1_638_901_698);
        for t in [0u64, 951_827_696, 1_638_901_698, 4_102_444_800, 1_709_164_800] {
            assert_eq!(parse(&format(t)).unwrap(), t as i64, "{}", format(t));
        }
        assert_eq!(format(1_638_901_698), "2021-12-07T18:28:18Z");
    }

    #[test]
    fn rejects_what_rfc_3339_does_not_allow() {
        for bad in [
            "",
            "2021-12-07",
            "2021-12-07T18:28:18",
            "2021-12-07 18:28:18Z",
            "2021-13-07T18:28:18Z",
            "2021-02-29T18:28:18Z",
            "2021-12-07T24:00:00Z",
            "2021-12-07T18:28:18.Z",
            "2021-12-07T18:28:18+0200",
            "2021-12-07T18:28:18Z ",
            "२०21-12-07T18:28:18Z",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
