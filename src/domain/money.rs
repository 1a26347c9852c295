//! Money is an integer amount in the currency's minor unit plus an ISO currency code, everywhere.
//! Formatting knows zero-decimal (JPY, KRW, …) and three-decimal (BHD, KWD, …) currencies.

/// Currencies whose minor unit is the unit itself (Stripe's list).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
];
/// Currencies with three decimals.
const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// Digits after the decimal point for `currency` (lower- or upper-case ISO code).
pub fn decimals(currency: &str) -> u32 {
    let c = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency.to_ascii_lowercase().as_str() {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        "inr" => "₹",
        "krw" => "₩",
        _ => return None,
    })
}

/// `$1,234.56`, `¥1,500`, `-€3.00`, `CHF 12.00`: thousands separators, the currency's decimals.
pub fn format(amount_minor: i64, currency: &str) -> String {
    let places = decimals(currency);
    let negative = amount_minor < 0;
    let abs = amount_minor.unsigned_abs();
    let divisor = 10u64.pow(places);
    let (whole, fraction) = (abs / divisor, abs % divisor);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let number = if places == 0 {
        grouped
    } else {
        format!("{grouped}.{fraction:0width$}", width = places as usize)
    };
    let sign = if negative { "-" } else { "" };
    match symbol(currency) {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{} {number}", currency.to_ascii_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_decimal_currencies() {
        assert_eq!(format(123_456, "usd"), "$1,234.56");
        assert_eq!(format(5, "eur"), "€0.05");
        assert_eq!(format(-300, "gbp"), "-£3.00");
        assert_eq!(format(100_000_000, "USD"), "$1,000,000.00");
        assert_eq!(format(1200, "chf"), "CHF 12.00");
    }

    #[test]
    fn zero_and_three_decimal_currencies() {
        assert_eq!(format(1500, "jpy"), "¥1,500");
        assert_eq!(format(1_000_000, "krw"), "₩1,000,000");
        assert_eq!(format(1234, "kwd"), "KWD 1.234");
        assert_eq!(decimals("JPY"), 0);
        assert_eq!(decimals("bhd"), 3);
    }

    #[test]
    fn extremes_do_not_panic() {
        assert!(format(i64::MIN, "usd").starts_with("-$"));
        assert_eq!(format(0, "usd"), "$0.00");
    }
}
