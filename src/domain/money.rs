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

/// `1,234,567`: digits in groups of three.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    grouped
}

/// A count as pages show it: `1,269`, `-3`.
pub fn count(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group(n.unsigned_abs()))
}

/// `$1,234.56`, `¥1,500`, `-€3.00`, `CHF 12.00`: thousands separators, the currency's decimals.
pub fn format(amount_minor: i64, currency: &str) -> String {
    let places = decimals(currency);
    let negative = amount_minor < 0;
    let abs = amount_minor.unsigned_abs();
    let divisor = 10u64.pow(places);
    let (whole, fraction) = (abs / divisor, abs % divisor);
    let grouped = group(whole);
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

/// A whole amount, as a chart's axis shows it: `$2,000`, `-€500`, `¥1,500` (cents dropped,
/// rounded toward zero; the axis only asks for whole amounts).
pub fn format_whole(amount_minor: i64, currency: &str) -> String {
    let whole = amount_minor / 10i64.pow(decimals(currency));
    let sign = if whole < 0 { "-" } else { "" };
    let number = group(whole.unsigned_abs());
    match symbol(currency) {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{} {number}", currency.to_ascii_uppercase()),
    }
}

/// An amount as typed in a form field, without symbol or separators: `12.50`, `1500` (JPY).
pub fn to_input(amount_minor: i64, currency: &str) -> String {
    let places = decimals(currency);
    if places == 0 {
        return amount_minor.to_string();
    }
    let divisor = 10i64.pow(places);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / divisor as u64,
        abs % divisor as u64,
        width = places as usize
    )
}

/// Reads an amount an admin typed (`12.5`, `12.50`, `1,200.00`, `1500` for JPY) into minor units.
/// Refuses more decimals than the currency has, negatives and anything that is not a number.
pub fn parse_input(text: &str, currency: &str) -> Result<i64, String> {
    let places = decimals(currency);
    let cleaned: String = text.trim().chars().filter(|c| *c != ',' && *c != ' ').collect();
    if cleaned.is_empty() {
        return Err("Enter an amount.".into());
    }
    let (whole, fraction) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits_only(whole) || !digits_only(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return Err(format!(
            "{text:?} is not an amount; write it like {}.",
            to_input(1250 * 10i64.pow(places) / 100, currency)
        ));
    }
    if fraction.len() > places as usize {
        return Err(match places {
            0 => format!(
                "{} has no decimals; enter a whole number.",
                currency.to_ascii_uppercase()
            ),
            n => format!("{} has {n} decimals at most.", currency.to_ascii_uppercase()),
        });
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "That amount is too large.".to_string())?
    };
    let mut minor = whole
        .checked_mul(10i64.pow(places))
        .ok_or("That amount is too large.")?;
    if !fraction.is_empty() {
        let padded = format!("{fraction:0<width$}", width = places as usize);
        minor = minor
            .checked_add(
                padded
                    .parse::<i64>()
                    .map_err(|_| "That amount is too large.".to_string())?,
            )
            .ok_or("That amount is too large.")?;
    }
    Ok(minor)
}

/// The smallest amount Stripe charges in a currency (minor units), for the common settlement
/// currencies; 50 of the minor unit elsewhere (Stripe's usual floor).
pub fn stripe_minimum(currency: &str) -> i64 {
    match currency.to_ascii_lowercase().as_str() {
        "usd" | "eur" | "aud" | "cad" | "chf" | "nzd" | "sgd" | "brl" => 50,
        "gbp" => 30,
        "jpy" => 50,
        "dkk" => 250,
        "nok" | "sek" => 300,
        "hkd" => 400,
        "mxn" => 1000,
        "pln" => 200,
        "czk" => 1500,
        "huf" => 17500,
        "inr" => 50,
        "myr" => 200,
        "thb" => 1000,
        "aed" => 200,
        "ron" => 200,
        "bgn" => 100,
        _ => 50,
    }
}

/// Stripe's supported presentment currencies (ISO 4217, lower-case).
pub const CURRENCIES: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt", "bgn", "bhd", "bif",
    "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf", "chf", "clp", "cny", "cop", "crc", "cve",
    "czk", "djf", "dkk", "dop", "dzd", "egp", "etb", "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq",
    "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf",
    "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop",
    "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "omr", "pab", "pen", "pgk",
    "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle",
    "sos", "srd", "std", "szl", "thb", "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu",
    "uzs", "vnd", "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_amounts_for_axes() {
        assert_eq!(format_whole(200_000, "usd"), "$2,000");
        assert_eq!(format_whole(-50_000, "eur"), "-€500");
        assert_eq!(format_whole(1500, "jpy"), "¥1,500");
        assert_eq!(format_whole(0, "usd"), "$0");
        assert_eq!(format_whole(100_000, "chf"), "CHF 1,000");
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1269), "1,269");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-4200), "-4,200");
        assert_eq!(count(i64::MIN), "-9,223,372,036,854,775,808");
    }

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

    #[test]
    fn amounts_typed_by_admins() {
        assert_eq!(super::parse_input("12.5", "usd"), Ok(1250));
        assert_eq!(super::parse_input(" 1,200.00 ", "eur"), Ok(120_000));
        assert_eq!(super::parse_input("1500", "jpy"), Ok(1500));
        assert_eq!(super::parse_input(".75", "gbp"), Ok(75));
        assert_eq!(super::parse_input("1.234", "kwd"), Ok(1234));
        assert!(super::parse_input("15.5", "jpy").unwrap_err().contains("no decimals"));
        assert!(super::parse_input("1.001", "usd").unwrap_err().contains("2 decimals"));
        assert!(super::parse_input("-5", "usd").is_err());
        assert!(super::parse_input("abc", "usd").is_err());
        assert!(super::parse_input("", "usd").is_err());
        assert!(super::parse_input("99999999999999999999", "usd").is_err());
        assert_eq!(super::to_input(1250, "usd"), "12.50");
        assert_eq!(super::to_input(1500, "jpy"), "1500");
        assert_eq!(super::to_input(5, "kwd"), "0.005");
        assert!(super::CURRENCIES.contains(&"jpy") && super::CURRENCIES.windows(2).all(|w| w[0] < w[1]));
    }
}
