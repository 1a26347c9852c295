//! argon2id password hashing with one of OWASP's equally strong parameter sets (7 MiB, 5 passes,
//! 1 lane: the same defence as 19 MiB and 2 passes, for less memory at a login), run on the
//! blocking pool with a cap on concurrent hashes so logins cannot starve the async runtime or
//! memory.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

pub const MEMORY_KIB: u32 = 7 * 1024;
pub const ITERATIONS: u32 = 5;
pub const PARALLELISM: u32 = 1;
/// Hashes computed at once (CPU-bound; each holds 7 MiB).
const CONCURRENT_HASHES: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Task,
}

/// The outcome of checking a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes { needs_rehash: bool },
}

fn argon2() -> Argon2<'static> {
    // These parameters are within argon2's limits, so `new` cannot fail; fall back to the
    // crate's defaults (also argon2id) rather than panic.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(CONCURRENT_HASHES))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
    let _permit = permits().acquire().await.map_err(|_| PasswordError::Task)?;
    tokio::task::spawn_blocking(f).await.map_err(|_| PasswordError::Task)
}

fn hash_now(password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

pub async fn hash(password: String) -> Result<String, PasswordError> {
    blocking(move || hash_now(password.as_bytes())).await?
}

/// A hash of a random password, used when the email is unknown so that the answer takes as long
/// as for a known email with a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(uuid::Uuid::new_v4().to_string().as_bytes()).unwrap_or_default())
}

/// Checks `password` against `stored` (or against a dummy hash when there is no account).
pub async fn verify(password: String, stored: Option<String>) -> Result<Verified, PasswordError> {
    blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_string());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return Verified::No;
        };
        let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
        if ok && known {
            Verified::Yes {
                needs_rehash: needs_rehash(&parsed),
            }
        } else {
            Verified::No
        }
    })
    .await
}

/// True when a stored hash was made with other parameters than today's.
fn needs_rehash(hash: &PasswordHash<'_>) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(hash) {
        Ok(p) => p.m_cost() != MEMORY_KIB || p.t_cost() != ITERATIONS || p.p_cost() != PARALLELISM,
        Err(_) => true,
    }
}

/// Hashes with chosen (weaker) parameters; only for tests of the upgrade path.
#[doc(hidden)]
pub fn hash_with_params(password: &str, m_kib: u32, t: u32) -> String {
    let params = Params::new(m_kib, t, 1, None).unwrap_or_default();
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_carry_owasp_parameters() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert_eq!(
            verify("correct horse battery".into(), Some(h.clone())).await.unwrap(),
            Verified::Yes { needs_rehash: false }
        );
        assert_eq!(
            verify("wrong horse battery".into(), Some(h)).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        assert_eq!(verify("anything at all".into(), None).await.unwrap(), Verified::No);
        assert_eq!(
            verify("x".into(), Some("not a hash".into())).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let weak = hash_with_params("correct horse battery", 8 * 1024, 1);
        assert_eq!(
            verify("correct horse battery".into(), Some(weak)).await.unwrap(),
            Verified::Yes { needs_rehash: true }
        );
    }
}
