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
