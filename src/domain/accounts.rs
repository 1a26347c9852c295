//! The Stripe accounts Tally knows, as Settings and the command line show them (never a secret).

use serde::{Deserialize, Serialize};

/// How Tally reaches an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// With its own secret key.
    Direct,
    /// A Stripe Connect account, with its platform's key and `Stripe-Account`.
    Connected,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Direct => "direct",
            AccountKind::Connected => "connected",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "direct" => Some(AccountKind::Direct),
            "connected" => Some(AccountKind::Connected),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `acct_…`
    pub id: String,
    pub name: String,
    /// `Some(true)` live mode, `Some(false)` test mode, `None` not known yet.
    pub livemode: Option<bool>,
    pub kind: AccountKind,
    /// Where Tally learnt of it: `environment`, `settings`, `cli` or `connect`.
    pub source: String,
    /// The platform of a connected account.
    pub platform_id: Option<String>,
    /// How many webhook signing secrets Tally keeps for it (the secrets themselves are sealed).
    pub webhook_secrets: usize,
    pub has_secret_key: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl Account {
    /// "Test mode", "Live mode" or "Mode unknown".
    pub fn mode_label(&self) -> &'static str {
        match self.livemode {
            Some(true) => "Live mode",
            Some(false) => "Test mode",
            None => "Mode unknown",
        }
    }
}

/// Settings → Stripe accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsPage {
    pub accounts: Vec<Account>,
    /// The viewer is an owner: may add, rename, disable and enable.
    pub can_manage: bool,
    /// TALLY_SECRETS_KEY is set, so accounts can be added.
    pub secrets_key_set: bool,
    /// Where Stripe should send every account's events.
    pub webhook_url: String,
}

/// An account's display name from its Stripe object: the dashboard's display name, the business
/// name, else the id.
pub fn display_name(account: &serde_json::Value) -> Option<String> {
    let pick = |path: &[&str]| {
        path.iter()
            .try_fold(account, |v, k| v.get(*k))
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    pick(&["settings", "dashboard", "display_name"])
        .or_else(|| pick(&["business_profile", "name"]))
        .or_else(|| pick(&["company", "name"]))
        .or_else(|| pick(&["id"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_dashboard_setting_then_the_business() {
        let v = serde_json::json!({"id": "acct_1", "settings": {"dashboard": {"display_name": " Acme EU "}},
                                   "business_profile": {"name": "Acme GmbH"}});
        assert_eq!(display_name(&v).as_deref(), Some("Acme EU"));
        let v = serde_json::json!({"id": "acct_1", "settings": {"dashboard": {"display_name": ""}},
                                   "business_profile": {"name": "Acme GmbH"}});
        assert_eq!(display_name(&v).as_deref(), Some("Acme GmbH"));
        assert_eq!(
            display_name(&serde_json::json!({"id": "acct_2"})).as_deref(),
            Some("acct_2")
        );
        for kind in [AccountKind::Direct, AccountKind::Connected] {
            assert_eq!(AccountKind::parse(kind.as_str()), Some(kind));
        }
    }
}

/// The `account_id` of the environment's account (`STRIPE_SECRET_KEY`) in every table: `''`, for
/// good (its `acct_…` lives in the registry; rotating its key rewrites no row).
pub const ENVIRONMENT: &str = "";

/// What `?account=` says for the environment's account before its `acct_…` is known.
pub const ENVIRONMENT_PARAM: &str = "main";

/// What `?account=` says for every account together (also the default).
pub const ALL_PARAM: &str = "all";

/// The accounts a read covers: every account, or some (one picked in the switcher, or those an
/// admin is limited to). Holds storage keys (`''` for the environment's account, else `acct_…`),
/// checked to be plain identifiers, so `filter` can write them into SQL as literals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[default]
    All,
    Only(Vec<String>),
}

impl Scope {
    /// Some accounts; keys that are not plain identifiers are dropped (they name no account).
    pub fn only<I: IntoIterator<Item = String>>(keys: I) -> Self {
        let mut keys: Vec<String> = keys.into_iter().filter(|k| is_key(k)).collect();
        keys.sort();
        keys.dedup();
        Scope::Only(keys)
    }

    /// The environment's account alone.
    pub fn environment() -> Self {
        Scope::Only(vec![ENVIRONMENT.to_string()])
    }

    /// A condition on `column` (an `account_id`) for a WHERE clause: `1 = 1` for every account,
    /// `column IN ('…')` for some, `1 = 0` for none.
    pub fn filter(&self, column: &str) -> String {
        match self {
            Scope::All => "1 = 1".to_string(),
            Scope::Only(keys) if keys.is_empty() => "1 = 0".to_string(),
            Scope::Only(keys) => format!(
                "{column} IN ({})",
                keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Whether rows of `account` are in scope.
    pub fn covers(&self, account: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(keys) => keys.iter().any(|k| k == account),
        }
    }

    /// The part of a cache key that tells scopes apart.
    pub fn cache_key(&self) -> String {
        match self {
            Scope::All => "*".to_string(),
            Scope::Only(keys) => keys.join("|"),
        }
    }
}

/// A storage key: empty (the environment's account) or letters, digits and `_` (`acct_…`).
pub fn is_key(key: &str) -> bool {
    key.len() <= 64 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn a_scope_renders_only_plain_keys() {
        assert_eq!(Scope::All.filter("account_id"), "1 = 1");
        assert_eq!(Scope::environment().filter("c.account_id"), "c.account_id IN ('')");
        let s = Scope::only(["acct_B".to_string(), "x' OR '1'='1".to_string(), "acct_A".to_string()]);
        assert_eq!(s.filter("account_id"), "account_id IN ('acct_A', 'acct_B')");
        assert_eq!(Scope::only(Vec::new()).filter("account_id"), "1 = 0");
        assert!(s.covers("acct_A") && !s.covers("") && Scope::All.covers("acct_Z"));
    }
}

/// One entry of the account switcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChoice {
    /// What `?account=` says for it (`acct_…`, or `main` for the environment's account before its
    /// id is known).
    pub param: String,
    pub name: String,
    pub kind: AccountKind,
}

/// A connected account's figures in one currency (the Connect list).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedFigures {
    pub currency: String,
    /// Succeeded charges' captured amount over the last 30 days.
    pub volume_30d: i64,
    /// Monthly recurring revenue now (active and past-due subscriptions).
    pub mrr: i64,
    /// Application fees the platform collected from it over the last 30 days, less their refunds.
    pub fees_30d: i64,
}

/// One connected account in the Connect list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedAccount {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    /// Per currency, the most volume first.
    pub figures: Vec<ConnectedFigures>,
}
