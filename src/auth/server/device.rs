//! Device cookies (OWASP's scheme against lockout attacks): a browser that has signed in to an
//! account gets a signed cookie naming that account and a random nonce. Failed logins from that
//! browser count against its nonce, not against the account, so a stranger's guesses that lock
//! the account for unknown browsers never lock its owner out; a stolen cookie still gets only
//! `LOGIN_MAX_FAILURES` guesses before its nonce is locked.

use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "tally_device";
/// A year, then the browser signs in as a stranger once more.
const MAX_AGE_SECS: i64 = 365 * 24 * 3600;

/// A valid device cookie: the account it signed in to, and its nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub admin_id: i64,
    pub nonce: String,
}

fn mac(secret: &str, admin_id: i64, nonce: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("tally device cookie v1|{admin_id}|{nonce}").as_bytes());
    Some(mac)
}

/// A new cookie value for `admin_id`.
pub fn issue(secret: &str, admin_id: i64) -> Option<String> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let tag = mac(secret, admin_id, &nonce)?.finalize().into_bytes();
    Some(format!("{admin_id}.{nonce}.{}", hex::encode(tag)))
}

/// The device the request's cookie names, if its signature holds.
pub fn read(secret: &str, headers: &HeaderMap) -> Option<Device> {
    let value = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)?;
    let mut parts = value.splitn(3, '.');
    let admin_id: i64 = parts.next()?.parse().ok()?;
    let nonce = parts.next()?;
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tag = parts
        .next()
        .filter(|t| t.len() <= 128)
        .and_then(|t| hex::decode(t).ok())?;
    mac(secret, admin_id, nonce)?.verify_slice(&tag).ok()?;
    Some(Device {
        admin_id,
        nonce: nonce.to_string(),
    })
}

/// The `Set-Cookie` header for a cookie value.
pub fn set_cookie(value: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn only_a_cookie_signed_with_the_secret_names_a_device() {
        let value = issue("s3cret-s3cret-s3cret-s3cret-s3cret", 7).unwrap();
        let device = read(
            "s3cret-s3cret-s3cret-s3cret-s3cret",
            &headers(&format!("a=b; {COOKIE}={value}")),
        )
        .unwrap();
        assert_eq!(device.admin_id, 7);
        assert!(read(
            "another-secret-another-secret-xx",
            &headers(&format!("{COOKIE}={value}"))
        )
        .is_none());
        // Another account's id on the same nonce and tag is refused.
        let forged = value.replacen("7.", "8.", 1);
        assert!(read(
            "s3cret-s3cret-s3cret-s3cret-s3cret",
            &headers(&format!("{COOKIE}={forged}"))
        )
        .is_none());
        for junk in ["", "x", "7..", "7.zz.zz", &"9".repeat(5000)] {
            assert!(read(
                "s3cret-s3cret-s3cret-s3cret-s3cret",
                &headers(&format!("{COOKIE}={junk}"))
            )
            .is_none());
        }
    }
}
