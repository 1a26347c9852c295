//! Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex hmac>[,v1=…][,v0=…]`, where each
//! `v1` is HMAC-SHA256 over `"{t}.{raw body}"` keyed with an endpoint secret. Checked over the raw
//! bytes before anything is parsed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("no v1 signature in Stripe-Signature header")]
    NoV1,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Accepts when any `v1` matches any secret and `t` is no older than `tolerance_secs` (a little
/// clock skew into the future is allowed too). Comparison is constant-time.
pub fn verify(
    header: Option<&[u8]>,
    body: &[u8],
    secrets: &[Secret],
    tolerance_secs: i64,
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
    let mut timestamp: Option<i64> = None;
    let mut v1: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                let mut bytes = [0u8; 32];
                // A v1 that is not 64 hex digits can never match; skip it rather than reject the
                // whole header, as Stripe may add formats.
                if hex::decode_to_slice(value, &mut bytes).is_ok() {
                    v1.push(bytes);
                }
            }
            _ => {} // v0 and future schemes are ignored
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    if now.saturating_sub(t) > tolerance_secs || t.saturating_sub(now) > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose().as_bytes()) else {
            continue;
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        for candidate in &v1 {
            // verify_slice compares in constant time.
            if mac.clone().verify_slice(candidate).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// Builds a valid header (tests, the demo data and the benchmark sign events with it).
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", hex_mac(body, secret, t))
}

fn hex_mac(body: &[u8], secret: &str, t: i64) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.created"}"#;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::new(*s)).collect()
    }

    fn check(header: &str, secret_list: &[&str]) -> Result<i64, SignatureError> {
        verify(Some(header.as_bytes()), BODY, &secrets(secret_list), 300, NOW)
    }

    /// A known answer computed outside Tally (Python's hmac module:
    /// `hmac.new(secret, b"1767225600." + body, hashlib.sha256).hexdigest()`), so a mistake shared
    /// by `sign` and `verify` cannot hide.
    #[test]
    fn a_signature_computed_elsewhere_verifies() {
        let body = br#"{"id":"evt_kat","object":"event","type":"customer.created","created":1767225600,"data":{"object":{"id":"cus_kat","object":"customer"}}}"#;
        let header = "t=1767225600,v1=a7ff08ed247dc5e43247f7733d8c0a1b7d4ca5dc6f0631323c20c47701b9f269";
        let secret = secrets(&["whsec_kat_0123456789abcdef"]);
        assert_eq!(
            verify(Some(header.as_bytes()), body, &secret, 300, 1_767_225_700),
            Ok(1_767_225_600)
        );
        assert_eq!(
            sign(body, "whsec_kat_0123456789abcdef", 1_767_225_600),
            header,
            "Tally's own signing helper agrees"
        );
        let other = secrets(&["whsec_kat_0123456789abcdeF"]);
        assert_eq!(
            verify(Some(header.as_bytes()), body, &other, 300, 1_767_225_700),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn valid_signature() {
        assert_eq!(check(&sign(BODY, "whsec_a", NOW), &["whsec_a"]), Ok(NOW));
    }

    #[test]
    fn several_v1_in_either_order_and_two_secrets() {
        let good = hex_mac(BODY, "whsec_new", NOW);
        let other = hex_mac(BODY, "whsec_unrelated", NOW);
        assert!(check(&format!("t={NOW},v1={other},v1={good}"), &["whsec_new"]).is_ok());
        assert!(check(&format!("t={NOW},v1={good},v1={other}"), &["whsec_new"]).is_ok());
        // Rotation: either configured secret may have signed it.
        assert!(check(&sign(BODY, "whsec_old", NOW), &["whsec_new", "whsec_old"]).is_ok());
        assert!(check(&sign(BODY, "whsec_new", NOW), &["whsec_new", "whsec_old"]).is_ok());
        assert_eq!(
            check(&sign(BODY, "whsec_other", NOW), &["whsec_new", "whsec_old"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_timestamp() {
        assert_eq!(
            check(&sign(BODY, "whsec_a", NOW - 301), &["whsec_a"]),
            Err(SignatureError::Stale)
        );
        assert!(check(&sign(BODY, "whsec_a", NOW - 299), &["whsec_a"]).is_ok());
    }

    #[test]
    fn tampered_body_by_one_byte() {
        let header = sign(BODY, "whsec_a", NOW);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(Some(header.as_bytes()), &tampered, &secrets(&["whsec_a"]), 300, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn v0_only_is_refused() {
        let mac = hex_mac(BODY, "whsec_a", NOW);
        assert_eq!(
            check(&format!("t={NOW},v0={mac}"), &["whsec_a"]),
            Err(SignatureError::NoV1)
        );
    }

    #[test]
    fn empty_garbage_and_non_ascii_headers() {
        assert_eq!(
            verify(None, BODY, &secrets(&["whsec_a"]), 300, NOW),
            Err(SignatureError::Missing)
        );
        for header in [
            "",
            "garbage",
            "t=,v1=",
            "t=abc,v1=00",
            "v1=00",
            "t=1,,",
            "t=1800000000,v1=zz",
            "ü=1,v1=ß",
        ] {
            assert!(check(header, &["whsec_a"]).is_err(), "{header:?}");
        }
        let bytes: &[u8] = &[0xff, 0xfe, b't', b'='];
        assert_eq!(
            verify(Some(bytes), BODY, &secrets(&["whsec_a"]), 300, NOW),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn no_secrets_never_matches() {
        assert_eq!(check(&sign(BODY, "whsec_a", NOW), &[]), Err(SignatureError::Mismatch));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Header elements Stripe may add or a proxy may pass along: other schemes, unknown keys,
        /// odd values, spaces around the element; never a second `t` and always with `=`.
        fn extra_element() -> impl Strategy<Value = String> {
            (
                prop_oneof![
                    Just("v0".to_string()),
                    Just("v2".to_string()),
                    Just("v1".to_string()),
                    "[a-z]{0,8}"
                ],
                "[^,]{0,80}",
                "[ \t]{0,2}",
            )
                .prop_filter("a second t would replace the timestamp", |(k, _, _)| k.trim() != "t")
                .prop_map(|(k, v, pad)| format!("{pad}{k}={v}{pad}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

            /// Any bytes as header and body: an answer, never a panic, and never an acceptance.
            #[test]
            fn arbitrary_headers_are_refused_without_panicking(
                header in proptest::collection::vec(any::<u8>(), 0..300),
                body in proptest::collection::vec(any::<u8>(), 0..300),
                now in any::<i64>(),
                tolerance in any::<i64>(),
            ) {
                prop_assert!(verify(Some(&header), &body, &secrets(&["whsec_a"]), tolerance, now).is_err());
            }

            /// Header-shaped text: `t=` with any number (overflowing ones too), v1 values of any
            /// length, empty elements; refused with a reason, never a panic.
            #[test]
            fn header_shaped_text_is_refused_without_panicking(
                parts in proptest::collection::vec(
                    prop_oneof![
                        "t=-?[0-9]{0,25}",
                        any::<i64>().prop_map(|t| format!("t={t}")),
                        "v1=[0-9a-fA-F]{0,70}",
                        "v1=[0-9a-f]{64}",
                        "v0=[0-9a-f]{64}",
                        "[a-z0-9=]{0,10}",
                        Just(String::new()),
                    ],
                    0..12,
                ),
                now in any::<i64>(),
            ) {
                let header = parts.join(",");
                prop_assert!(check_at(&header, now).is_err(), "{header:?}");
            }

            /// A genuine signature stays valid whatever else the header carries, in any position.
            #[test]
            fn a_valid_signature_survives_extra_elements(
                extras in proptest::collection::vec(extra_element(), 0..6),
                positions in proptest::collection::vec(any::<proptest::sample::Index>(), 2),
                skew in -300i64..=300,
            ) {
                let t = NOW + skew;
                let mut parts = extras;
                parts.insert(positions[0].index(parts.len() + 1), format!("t={t}"));
                parts.insert(positions[1].index(parts.len() + 1), format!("v1={}", hex_mac(BODY, "whsec_a", t)));
                let header = parts.join(",");
                prop_assert_eq!(check(&header, &["whsec_a"]), Ok(t), "{:?}", header);
            }

            /// Any change to the body, however small, or to the signed time, is a mismatch.
            #[test]
            fn any_changed_byte_or_time_is_refused(
                at in any::<proptest::sample::Index>(),
                flip in 1u8..=255,
                shift in prop_oneof![-300i64..0, 1i64..=300],
            ) {
                let header = sign(BODY, "whsec_a", NOW);
                let mut tampered = BODY.to_vec();
                let i = at.index(tampered.len());
                tampered[i] ^= flip;
                prop_assert_eq!(
                    verify(Some(header.as_bytes()), &tampered, &secrets(&["whsec_a"]), 300, NOW),
                    Err(SignatureError::Mismatch)
                );
                let mac = hex_mac(BODY, "whsec_a", NOW);
                let moved = format!("t={},v1={mac}", NOW + shift);
                prop_assert_eq!(check(&moved, &["whsec_a"]), Err(SignatureError::Mismatch));
            }
        }

        fn check_at(header: &str, now: i64) -> Result<i64, SignatureError> {
            verify(Some(header.as_bytes()), BODY, &secrets(&["whsec_a"]), 300, now)
        }
    }
}
