//! `Range` header parsing (RFC 9110 §14.1.2), for one byte range, and the `If-None-Match`
//! comparison.
//!
//! Several ranges in one request are answered with the whole representation (200), which
//! RFC 9110 §14.2 allows; players ask for one range at a time.

/// An inclusive byte range within a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything.
    Full,
    Partial(ByteRange),
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// Interprets a `Range` header value against a representation of `len` bytes.
pub fn parse_range(header: &str, len: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        // Other units are ignored (§14.1.1).
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(ByteRange {
                    start: len.saturating_sub(n),
                    end: len - 1,
                })
            }
        }
        (false, Some(start), end) if last.is_empty() || end.is_some() => {
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                // Invalid range-spec: the header is ignored (§14.1.2).
                return RangeRequest::Full;
            }
            RangeRequest::Partial(ByteRange { start, end })
        }
        _ => RangeRequest::Full,
    }
}

/// Whether an `If-None-Match` value names `etag` (or is `*`). RFC 9110 §13.1.2 compares with
/// the *weak* function: `W/"x"` matches `"x"`.
pub fn none_match_holds(value: &str, etag: &str) -> bool {
    value.split(',').map(str::trim).any(|t| {
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag.strip_prefix("W/").unwrap_or(etag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match_holds(r#""abc""#, r#""abc""#));
        assert!(none_match_holds(r#"W/"abc""#, r#""abc""#));
        assert!(none_match_holds(r#""x", W/"abc""#, r#""abc""#));
        assert!(none_match_holds("*", r#""abc""#));
        assert!(!none_match_holds(r#""abd", W/"ab""#, r#""abc""#));
    }

    fn p(s: u64, e: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start: s, end: e })
    }

    #[test]
    fn forms() {
        assert_eq!(parse_range("bytes=0-99", 1000), p(0, 99));
        assert_eq!(parse_range("bytes=500-", 1000), p(500, 999));
        assert_eq!(parse_range("bytes=-100", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), p(900, 999));
        assert_eq!(
            parse_range("bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 1000), RangeRequest::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeRequest::Full);
        assert_eq!(parse_range("items=0-1", 1000), RangeRequest::Full);
        assert_eq!(parse_range("bytes=a-b", 1000), RangeRequest::Full);
        assert_eq!(parse_range("bytes=+1-2", 1000), RangeRequest::Full);
        assert_eq!(parse_range("bytes=0-", 0), RangeRequest::Unsatisfiable);
    }

    proptest! {
        #[test]
        fn partial_ranges_lie_inside(header in "(bytes=)?[0-9-]{0,12}", len in 0u64..100_000) {
            if let RangeRequest::Partial(r) = parse_range(&header, len) {
                prop_assert!(r.start <= r.end && r.end < len);
            }
        }
    }
}
