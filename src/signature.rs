//! Every signature scheme the service accepts, and the one comparison they all go through.
//!
//! - `X-Signature` (POST /webhook) and `X-Hub-Signature-256` (Meta's, on /webhook/whatsapp): the
//!   hex HMAC-SHA256 of the raw body, 64 hex digits in either case, optionally prefixed
//!   `sha256=`; the key is the secret's bytes as written.
//! - Standard Webhooks (POST /webhook with `webhook-id`, `webhook-timestamp`,
//!   `webhook-signature`): the base64 HMAC-SHA256 of `{id}.{timestamp}.{raw body}` in
//!   space-separated `v1,<base64>` entries (several while a sender rotates keys; every one is
//!   tried, entries of other versions are ignored). The key is the base64 after `whsec_`, or the
//!   secret's bytes when it has no such prefix (or what follows is not base64). The timestamp is
//!   integer seconds and must lie within the tolerance of now, in both directions.
//!
//! The one comparison, `matches`, is hmac's constant-time `verify_slice`, which also refuses a
//! claim of any length other than 32 bytes: an empty `v1,` or a truncated signature never
//! matches (a compare over the shorter of the two would let both through).
//!
//! Owns: the header grammars, the base64 decoder (standard alphabet, padding optional: 20 lines
//! instead of a crate), the comparison. Leaves out: which header a request carries, which
//! secrets are configured, the clock (callers pass `now`). Uses: `http::hex_val`, hmac, sha2.

use crate::http::hex_val;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The Standard Webhooks headers, in the order `Standard::parse` takes them.
pub const STANDARD_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// The one comparison: whether any of `claims` is the HMAC-SHA256 of the concatenated `parts`
/// under any of `keys`, each compared in constant time over all 32 bytes.
pub fn matches<K: AsRef<[u8]>, C: AsRef<[u8]>>(keys: &[K], parts: &[&[u8]], claims: &[C]) -> bool {
    keys.iter().any(|key| {
        // new_from_slice accepts keys of any length for HMAC, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_ref()) else {
            return false;
        };
        parts.iter().for_each(|p| mac.update(p));
        claims
            .iter()
            .any(|c| mac.clone().verify_slice(c.as_ref()).is_ok())
    })
}

/// `[sha256=]<64 hex digits>` to the 32 signature bytes.
pub fn parse_hex(header: &str) -> Option<[u8; 32]> {
    let h = header.trim();
    let hex = match h.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256=") => &h[7..],
        _ => h,
    };
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = hex_val(pair[0])? * 16 + hex_val(pair[1])?;
    }
    Some(out)
}

/// What a request's signature headers claim, checked for form (and, for Standard Webhooks, for
/// time): what is signed before the body, and the signatures to compare.
#[derive(Debug)]
pub struct Claim {
    /// A secret's key: its bytes, or `standard_key`.
    key: fn(&str) -> Vec<u8>,
    prefix: String,
    signatures: Vec<Vec<u8>>,
}

impl Claim {
    /// An `X-Signature` or `X-Hub-Signature-256` header; `None` when it is malformed.
    pub fn hex(header: &str) -> Option<Claim> {
        let signatures = vec![parse_hex(header)?.to_vec()];
        let (key, prefix) = (|s: &str| s.as_bytes().to_vec(), String::new());
        Some(Claim {
            key,
            prefix,
            signatures,
        })
    }

    /// The Standard Webhooks headers (in the order of `STANDARD_HEADERS`); `None` when one is
    /// missing or the timestamp is not integer seconds within `tolerance` seconds of `now`
    /// (either way). Entries that are not `v1` or not base64 are dropped (none left: nothing
    /// verifies).
    pub fn standard(headers: [Option<&str>; 3], now: i64, tolerance: u64) -> Option<Claim> {
        let [Some(id), Some(timestamp), Some(signatures)] = headers else {
            return None;
        };
        let digits = timestamp.len() <= 18 && timestamp.bytes().all(|c| c.is_ascii_digit());
        let ts: i64 = timestamp.parse().ok().filter(|_| digits)?;
        if ts.abs_diff(now) > tolerance {
            return None;
        }
        let signatures = signatures
            .split_ascii_whitespace()
            .filter_map(|entry| base64(entry.strip_prefix("v1,")?))
            .collect();
        let (key, prefix) = (standard_key, format!("{id}.{ts}."));
        Some(Claim {
            key,
            prefix,
            signatures,
        })
    }

    /// Whether a signature is that of `body` under any of `secrets` (their bytes, or for
    /// Standard Webhooks `standard_key`).
    pub fn verify<S: AsRef<str>>(&self, secrets: &[S], body: &[u8]) -> bool {
        let keys: Vec<Vec<u8>> = secrets.iter().map(|s| (self.key)(s.as_ref())).collect();
        matches(&keys, &[self.prefix.as_bytes(), body], &self.signatures)
    }
}

/// A Standard Webhooks key: the base64 after `whsec_`, else the secret's bytes.
pub fn standard_key(secret: &str) -> Vec<u8> {
    let decoded = secret.strip_prefix("whsec_").and_then(base64);
    decoded.unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// Standard base64 (`A-Z a-z 0-9 + /`), `=` padding optional; `None` for any other character,
/// padding anywhere but the end, or a length no encoding has.
pub fn base64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2
        || body.len() % 4 == 1
        || (s.len() != body.len() && !s.len().is_multiple_of(4))
    {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn sign_hex(key: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The reference libraries' test vector, verified against a clock fixed at `now`.
    fn vector(signatures: &str, ts: &str, now: i64, secrets: &[&str]) -> bool {
        Claim::standard([Some(ID), Some(ts), Some(signatures)], now, 300)
            .is_some_and(|s| s.verify(secrets, BODY))
    }

    #[test]
    fn standard_webhooks_test_vector() {
        let ts = TS.to_string();
        assert!(vector(SIG, &ts, TS, &[SECRET]));
        assert!(vector(SIG, &ts, TS + 300, &[SECRET]), "300 s old");
        assert!(vector(SIG, &ts, TS - 300, &[SECRET]), "300 s ahead");
        assert!(!vector(SIG, &ts, TS + 301, &[SECRET]), "301 s old");
        assert!(!vector(SIG, &ts, TS - 301, &[SECRET]), "301 s ahead");
        let list = format!("v1,{} v1a,xyz {SIG} v1,!!", "A".repeat(44));
        assert!(vector(&list, &ts, TS, &[SECRET]), "one good entry");
        assert!(vector(SIG, &ts, TS, &["whsec_b2xk", SECRET]), "rotation");
        assert!(!vector(SIG, &ts, TS, &["whsec_b2xk"]), "wrong key");
        assert!(!vector("v1,", &ts, TS, &[SECRET]), "empty signature");
        assert!(!vector(&SIG[..30], &ts, TS, &[SECRET]), "truncated");
        assert!(!vector(&SIG[3..], &ts, TS, &[SECRET]), "no version");
        assert!(!vector(SIG, &format!("{ts}.0"), TS, &[SECRET]));
        assert!(!vector(SIG, &format!("+{ts}"), TS, &[SECRET]));
        assert!(!vector(SIG, "", TS, &[SECRET]));
        let body_changed = Claim::standard([Some(ID), Some(&ts), Some(SIG)], TS, 300)
            .is_some_and(|s| s.verify(&[SECRET], b"{}"));
        assert!(!body_changed);
        assert!(Claim::standard([Some(ID), None, Some(SIG)], TS, 300).is_none());
        assert!(Claim::standard([None, Some(&ts), Some(SIG)], TS, 300).is_none());
    }

    #[test]
    fn keys() {
        assert_eq!(standard_key("whsec_AQID"), [1, 2, 3]);
        assert_eq!(standard_key("raw"), b"raw");
        assert_eq!(standard_key("whsec_*"), b"whsec_*");
    }

    #[test]
    fn base64_forms() {
        assert_eq!(base64("").as_deref(), Some(&b""[..]));
        assert_eq!(base64("Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64("Zg").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64("+/+/").as_deref(), Some(&[0xfb, 0xff, 0xbf][..]));
        for bad in ["Z", "Zg=", "Zg===", "Z=g=", "Zm9v-_", "Zm 9v", "Zg==Zg=="] {
            assert_eq!(base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_forms() {
        let sig = sign_hex(b"k", b"body");
        let ok = |h: &str, body: &[u8], secrets: &[&str]| {
            Claim::hex(h).is_some_and(|c| c.verify(secrets, body))
        };
        assert!(ok(&sig, b"body", &["k"]));
        assert!(ok(&sig.to_uppercase(), b"body", &["k"]));
        assert!(ok(&format!("sha256={sig}"), b"body", &["k"]));
        assert!(ok(&format!("SHA256={sig}"), b"body", &["k"]));
        assert!(ok(&sig, b"body", &["old", "k"]), "any configured secret");
        let written = sign_hex(b"whsec_AQID", b"body");
        assert!(
            ok(&written, b"body", &["whsec_AQID"]),
            "hex keys are the bytes as written"
        );
        assert!(!ok(&sig, b"body ", &["k"]), "raw bytes, whitespace counts");
        assert!(!ok(&sig, b"body", &["x"]));
        assert!(!ok("", b"body", &["k"]));
        assert!(!ok(&sig[..62], b"body", &["k"]));
        assert!(!ok(&format!("{}zz", &sig[..62]), b"body", &["k"]));
        assert!(!ok(&format!("md5={sig}"), b"body", &["k"]));
    }

    #[test]
    fn the_compare_is_over_the_full_length() {
        let full = base64(&SIG[3..]).expect("base64");
        let prefix = format!("{ID}.{TS}.");
        let parts: [&[u8]; 2] = [prefix.as_bytes(), BODY];
        let key = standard_key(SECRET);
        assert!(matches(&[&key], &parts, &[&full]));
        for n in [0, 1, 16, 31] {
            assert!(!matches(&[&key], &parts, &[&full[..n]]), "{n} bytes");
        }
    }
}
