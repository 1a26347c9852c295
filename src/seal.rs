//! Secrets kept in the database (the Stripe keys and webhook signing secrets of accounts added in
//! Settings or with `tally accounts add`) are sealed with XChaCha20-Poly1305 under a key from the
//! environment (`TALLY_SECRETS_KEY`, 32 bytes as 64 hex characters). Each sealed value is bound to
//! where it is kept (`context`, e.g. `acct_123:secret_key`) as associated data, so a value copied
//! to another row or column does not open. A database dump without the key reveals no secret.
//!
//! Format: `v1:` + hex(24-byte random nonce ‖ ciphertext and tag).

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// The key that seals and opens stored secrets. Never printed.
#[derive(Clone)]
pub struct SealKey(chacha20poly1305::Key);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(redacted)")
    }
}

/// Why a sealed value did not open.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the stored secret is not in a format Tally writes")]
    Malformed,
    #[error("the stored secret does not open with TALLY_SECRETS_KEY (another key sealed it, or it was altered)")]
    WrongKey,
}

impl SealKey {
    /// 64 hex characters (`openssl rand -hex 32`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let bytes =
            hex::decode(value.trim()).map_err(|_| "must be 64 hex characters (openssl rand -hex 32)".to_string())?;
        if bytes.len() != 32 {
            return Err("must be 64 hex characters (openssl rand -hex 32)".into());
        }
        Ok(SealKey(*chacha20poly1305::Key::from_slice(&bytes)))
    }

    /// Seals `secret` for the place `context` names.
    pub fn seal(&self, secret: &str, context: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let cipher = XChaCha20Poly1305::new(&self.0);
        // Encryption with a valid key and nonce cannot fail for inputs this size.
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", hex::encode(out))
    }

    /// Opens a value `seal` wrote for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(SealError::Malformed)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(&self.0);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_place() {
        let key = SealKey::parse(KEY).unwrap();
        let sealed = key.seal("sk_test_51secret", "acct_1:secret_key");
        assert!(sealed.starts_with("v1:") && !sealed.contains("sk_test"));
        assert_eq!(key.open(&sealed, "acct_1:secret_key").unwrap(), "sk_test_51secret");
        // Two seals of one secret differ (random nonces).
        assert_ne!(key.seal("sk_test_51secret", "acct_1:secret_key"), sealed);
        // Another row, another key, an altered byte: refused.
        assert_eq!(key.open(&sealed, "acct_2:secret_key"), Err(SealError::WrongKey));
        let other = SealKey::parse(&KEY.replace("00", "ff")).unwrap();
        assert_eq!(other.open(&sealed, "acct_1:secret_key"), Err(SealError::WrongKey));
        let mut altered = sealed.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == '0' { '1' } else { '0' });
        assert_eq!(key.open(&altered, "acct_1:secret_key"), Err(SealError::WrongKey));
        assert_eq!(
            key.open("sk_test_plain", "acct_1:secret_key"),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn keys_are_64_hex_characters_and_never_printed() {
        assert!(SealKey::parse("abc").is_err());
        assert!(SealKey::parse(&"zz".repeat(32)).is_err());
        let key = SealKey::parse(KEY).unwrap();
        assert_eq!(format!("{key:?}"), "SealKey(redacted)");
    }
}
