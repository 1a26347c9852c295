//! Building links that carry filters in the URL (shared by server and browser builds).

/// Percent-encodes one query value (RFC 3986 unreserved characters stay as they are).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `key=value&…` for the keys of `keys` present in `params` (and the chosen `account`), then
/// `extra`.
pub fn carry(params: &leptos_router::params::ParamsMap, keys: &[&str], extra: (&str, &str)) -> String {
    // The chosen Stripe account travels with every link.
    let account = (!keys.contains(&"account")).then_some(&"account");
    keys.iter()
        .chain(account)
        .filter(|k| **k != extra.0)
        .filter_map(|k| {
            params
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(&v)))
        })
        .chain(std::iter::once(format!("{}={}", extra.0, encode(extra.1))))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("1700000000:evt_1"), "1700000000%3Aevt_1");
    }
}

/// A hidden `account` field for a GET form, so filtering keeps the chosen Stripe account.
#[leptos::component]
pub fn AccountField() -> impl leptos::IntoView {
    use leptos::prelude::*;
    let account = leptos_router::hooks::use_query_map()
        .with_untracked(|q| q.get("account"))
        .filter(|a| !a.is_empty());
    account.map(|a| view! { <input type="hidden" name="account" value=a/> })
}

/// `&account=…` for a hand-built link when an account is chosen, else nothing.
pub fn account_suffix() -> String {
    use leptos::prelude::*;
    leptos_router::hooks::use_query_map()
        .with_untracked(|q| q.get("account"))
        .filter(|a| !a.is_empty())
        .map(|a| format!("&account={}", encode(&a)))
        .unwrap_or_default()
}
