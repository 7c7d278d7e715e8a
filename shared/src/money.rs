//! Money as Stripe counts it: integer amounts in a currency's minor unit (cents, or yen for
//! zero-decimal currencies), a currency code, how an amount reads in an email, and the
//! platform fee arithmetic of Connect sales. Amounts are never floats.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// An ISO 4217 currency code as Stripe writes it: three lower-case letters (`eur`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

/// A currency code that is not three ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a currency code (three letters, e.g. eur)")]
pub struct InvalidCurrency;

/// Stripe's zero-decimal currencies: an amount of 500 JPY is 500 yen.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Stripe's three-decimal currencies: an amount of 5124 KWD is 5.124 dinars.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

impl Currency {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many digits of an amount are below the major unit.
    #[must_use]
    pub fn minor_digits(&self) -> u32 {
        if ZERO_DECIMAL.contains(&self.as_str()) {
            0
        } else if THREE_DECIMAL.contains(&self.as_str()) {
            3
        } else {
            2
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidCurrency;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(InvalidCurrency)
        }
    }
}

impl std::str::FromStr for Currency {
    type Err = InvalidCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_string())
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// For stored records written before currencies were typed, where a missing currency was an
/// empty string: that reads as `None`.
///
/// # Errors
/// A non-empty value that is not a currency code.
pub fn empty_as_none<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Currency>, D::Error> {
    match Option::<String>::deserialize(de)? {
        None => Ok(None),
        Some(code) if code.is_empty() => Ok(None),
        Some(code) => Currency::try_from(code)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// An amount in a currency's minor unit, for display: `Money::new(1999, &eur)` reads
/// `19.99 EUR`. Without a currency (an order Stripe gave none) the bare amount is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money<'a> {
    pub amount: i64,
    pub currency: Option<&'a Currency>,
}

impl<'a> Money<'a> {
    #[must_use]
    pub fn new(amount: i64, currency: &'a Currency) -> Self {
        Self {
            amount,
            currency: Some(currency),
        }
    }
}

impl fmt::Display for Money<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.map_or(2, Currency::minor_digits);
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        let unit = 10u64.pow(digits);
        match digits {
            0 => write!(f, "{sign}{abs}")?,
            d => write!(
                f,
                "{sign}{}.{:0width$}",
                abs / unit,
                abs % unit,
                width = d as usize
            )?,
        }
        match self.currency {
            Some(currency) => write!(f, " {}", currency.as_str().to_ascii_uppercase()),
            None => Ok(()),
        }
    }
}

/// A rate in hundredths of a percent: 250 is 2.5 %. Fees are computed in integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BasisPoints(u32);

/// A rate outside 0 to 100 %.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a percentage between 0 and 100 with at most two decimals")]
pub struct InvalidRate;

impl BasisPoints {
    pub const ZERO: Self = Self(0);

    /// # Errors
    /// Over 10,000 (100 %).
    pub fn new(bps: u32) -> Result<Self, InvalidRate> {
        if bps <= 10_000 {
            Ok(Self(bps))
        } else {
            Err(InvalidRate)
        }
    }

    #[must_use]
    pub fn get(self) -> u32 {
        self.0
    }

    /// This share of `amount`, rounded half up to the minor unit.
    #[must_use]
    pub fn of(self, amount: i64) -> i64 {
        let share = (i128::from(amount) * i128::from(self.0) + 5_000).div_euclid(10_000);
        // |share| <= |amount| since the rate is at most 100 %, so it fits.
        i64::try_from(share).unwrap_or(amount)
    }
}

/// `"2.5"` -> 250 basis points, as merchants write percentages in configuration.
impl std::str::FromStr for BasisPoints {
    type Err = InvalidRate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let (whole, frac) = match s.split_once('.') {
            Some((whole, frac)) if digits(frac) && frac.len() <= 2 => (whole, frac),
            Some(_) => return Err(InvalidRate),
            None => (s, ""),
        };
        if !digits(whole) {
            return Err(InvalidRate);
        }
        let whole: u32 = whole.parse().map_err(|_| InvalidRate)?;
        let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| InvalidRate)?;
        Self::new(
            whole
                .checked_mul(100)
                .and_then(|w| w.checked_add(frac))
                .ok_or(InvalidRate)?,
        )
    }
}

/// Stripe's decimal percent: 250 -> `2.5`, 1000 -> `10`, 1 -> `0.01`.
impl fmt::Display for BasisPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        match self.0 % 100 {
            0 => write!(f, "{whole}"),
            frac if frac % 10 == 0 => write!(f, "{whole}.{}", frac / 10),
            frac => write!(f, "{whole}.{frac:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        code.parse().unwrap()
    }

    #[test]
    fn amounts_display_in_major_units() {
        assert_eq!(Money::new(1999, &currency("eur")).to_string(), "19.99 EUR");
        assert_eq!(Money::new(5, &currency("usd")).to_string(), "0.05 USD");
        assert_eq!(Money::new(-250, &currency("usd")).to_string(), "-2.50 USD");
        assert_eq!(Money::new(500, &currency("jpy")).to_string(), "500 JPY");
        assert_eq!(Money::new(5124, &currency("kwd")).to_string(), "5.124 KWD");
        let bare = Money {
            amount: 1200,
            currency: None,
        };
        assert_eq!(bare.to_string(), "12.00");
    }

    #[test]
    fn currencies_parse_to_stripes_lower_case() {
        assert_eq!(currency("EUR").as_str(), "eur");
        for bad in ["", "eu", "euro", "e1r", "€ur"] {
            assert_eq!(bad.parse::<Currency>(), Err(InvalidCurrency), "{bad:?}");
        }
        let stored: Option<Currency> =
            empty_as_none(serde_json::Value::String(String::new())).unwrap();
        assert_eq!(stored, None);
    }

    #[test]
    fn rates_parse_print_and_round_half_up() {
        let rate: BasisPoints = "2.5".parse().unwrap();
        assert_eq!(rate.get(), 250);
        assert_eq!(rate.to_string(), "2.5");
        assert_eq!("10".parse::<BasisPoints>().unwrap().to_string(), "10");
        assert_eq!("0.01".parse::<BasisPoints>().unwrap().to_string(), "0.01");
        assert_eq!("12.34".parse::<BasisPoints>().unwrap().to_string(), "12.34");
        for bad in ["", "-1", "100.01", "1.234", "abc", "1.", ".5", "4294967296"] {
            assert!(bad.parse::<BasisPoints>().is_err(), "{bad:?}");
        }
        assert_eq!(rate.of(2000), 50);
        assert_eq!(rate.of(999), 25); // 24.975 rounds up
        assert_eq!(rate.of(10), 0); // 0.25 rounds down
        assert_eq!(BasisPoints::new(10_000).unwrap().of(i64::MAX), i64::MAX);
    }
}
