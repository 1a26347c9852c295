//! Admins as the server and the browser both see them: roles, the admin making a request, and
//! the rules for what an admin types (email, new password).

use serde::{Deserialize, Serialize};

/// Roles, in increasing privilege: each can do everything the one before it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Plus refunds, billing portal, subscription changes, sync.
    Admin,
    /// Plus admins, API keys and settings.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Whether someone with this role may do what `required` allows.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The admin making the current request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentAdmin {
    pub id: i64,
    pub email: String,
    pub role: Role,
}

pub const MIN_PASSWORD_BYTES: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Length limits for a new password, with a message an admin can act on.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let len = password.len();
    if len < MIN_PASSWORD_BYTES {
        Err(format!(
            "The password must be at least {MIN_PASSWORD_BYTES} characters long."
        ))
    } else if len > MAX_PASSWORD_BYTES {
        Err(format!("The password must be at most {MAX_PASSWORD_BYTES} bytes long."))
    } else {
        Ok(())
    }
}

/// Lower-cased, trimmed; a plausible address (one @, something on each side, a dot after it).
pub fn normalize_email(email: &str) -> Result<String, String> {
    let email = email.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && email.len() <= 254
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err("Enter an email address such as name@example.com.".into())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminView {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    pub is_you: bool,
    /// The Stripe accounts (as `?account=` names them) the admin is limited to; empty: every
    /// account. Owners see every account whatever this says.
    pub accounts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Owner.allows(Role::Admin) && Role::Owner.allows(Role::Viewer));
        assert!(Role::Admin.allows(Role::Admin) && !Role::Admin.allows(Role::Owner));
        assert!(!Role::Viewer.allows(Role::Admin));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn passwords_between_12_and_1024_bytes() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"a".repeat(11)).is_err());
        assert!(check_new_password(&"a".repeat(12)).is_ok());
        assert!(check_new_password(&"a".repeat(1024)).is_ok());
        assert!(check_new_password(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn emails_are_normalized() {
        assert_eq!(normalize_email("  Ada@Example.COM "), Ok("ada@example.com".into()));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
