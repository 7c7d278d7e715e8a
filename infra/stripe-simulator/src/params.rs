//! Stripe's form parameters, read as Stripe reads them: bracketed keys
//! (`custom_fields[0][label][custom]`), arrays by index (`[0]`, `[1]`) or appended (`[]`, for
//! arrays of plain values), the first parameter a route does not take (named up to its first
//! unknown segment, as Stripe names it), and typed readers answering Stripe's errors.

use http::StatusCode;

use crate::api::{ApiError, Pairs, bad_request, invalid_integer, param};

/// A key's segments: `a[b][0]` is `a`, `b`, `0`; `expand[]` is `expand` and an empty one.
fn segments(key: &str) -> Vec<&str> {
    let Some((top, rest)) = key.split_once('[') else {
        return vec![key];
    };
    let mut all = vec![top];
    all.extend(rest.strip_suffix(']').unwrap_or(rest).split("]["));
    all
}

/// A pattern's segment against a key's: `#` is any index (digits, or empty for `[]`), `*`
/// anything (a metadata key), else the very name.
fn matches(pattern: &str, got: &str) -> bool {
    match pattern {
        "#" => got.bytes().all(|b| b.is_ascii_digit()),
        "*" => true,
        name => name == got,
    }
}

fn name_of(segments: &[&str]) -> String {
    let mut name = segments[0].to_string();
    for segment in &segments[1..] {
        name.push('[');
        name.push_str(segment);
        name.push(']');
    }
    name
}

/// The first parameter no pattern of `known` takes (`line_items[#][price]`, `metadata[*]`):
/// `parameter_unknown` naming the key up to its first unknown segment
/// (`shipping_address_collection[foo]`, not its whole key when it goes deeper). A key that
/// stops where a pattern goes on (`shipping_address_collection=FR`) is an invalid object.
pub(crate) fn unknown_parameter(form: &Pairs, known: &[&str]) -> Option<ApiError> {
    let patterns: Vec<Vec<&str>> = known.iter().map(|p| segments(p)).collect();
    form.iter().find_map(|(key, _)| {
        let got = segments(key);
        let shared = |p: &Vec<&str>| {
            p.iter()
                .zip(&got)
                .take_while(|(p, g)| matches(p, g))
                .count()
        };
        if patterns
            .iter()
            .any(|p| p.len() == got.len() && shared(p) == got.len())
        {
            return None;
        }
        let depth = patterns.iter().map(shared).max().unwrap_or(0);
        Some(if depth < got.len() {
            let name = name_of(&got[..=depth]);
            ApiError {
                status: StatusCode::BAD_REQUEST,
                code: Some("parameter_unknown"),
                message: format!("Received unknown parameter: {name}"),
                param: Some(name),
            }
        } else {
            bad_request("Invalid object", key)
        })
    })
}

/// `parameter_missing`, as Stripe answers a required parameter left out.
pub(crate) fn required(name: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: Some("parameter_missing"),
        message: format!("Missing required param: {name}."),
        param: Some(name.into()),
    }
}

/// `true` or `false`, as Stripe takes booleans.
pub(crate) fn boolean(form: &Pairs, key: &str) -> Result<Option<bool>, ApiError> {
    match param(form, key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(bad_request(&format!("Invalid boolean: {other}"), key)),
    }
}

/// A non-negative integer.
pub(crate) fn integer(form: &Pairs, key: &str) -> Result<Option<u64>, ApiError> {
    param(form, key)
        .map(|v| v.parse::<u64>().map_err(|_| invalid_integer(key, v)))
        .transpose()
}

/// One of Stripe's enum values, answered as the `&'static str` of `allowed` so it can be kept.
pub(crate) fn one_of(
    form: &Pairs,
    key: &str,
    allowed: &[&'static str],
) -> Result<Option<&'static str>, ApiError> {
    let Some(value) = param(form, key) else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|a| **a == value)
        .copied()
        .map(Some)
        .ok_or_else(|| {
            bad_request(
                &format!("Invalid {key}: must be one of {}", allowed.join(", ")),
                key,
            )
        })
}

/// Whether any key of the hash `prefix` (`phone_number_collection[…]`) was sent.
pub(crate) fn sent(form: &Pairs, prefix: &str) -> bool {
    form.iter()
        .any(|(k, _)| k.strip_prefix(prefix).is_some_and(|r| r.starts_with('[')))
}

/// A boolean a hash requires once any of its keys is sent (`automatic_tax[enabled]`).
pub(crate) fn enabled(form: &Pairs, hash: &str) -> Result<Option<bool>, ApiError> {
    if !sent(form, hash) {
        return Ok(None);
    }
    let key = format!("{hash}[enabled]");
    boolean(form, &key)?.ok_or_else(|| required(&key)).map(Some)
}

pub(crate) fn max_chars(form: &Pairs, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    match param(form, key) {
        Some(v) if v.chars().count() > max => Err(bad_request(
            &format!("Invalid {key}: must be at most {max} characters"),
            key,
        )),
        other => Ok(other.map(str::to_string)),
    }
}

/// Stripe's keys and dropdown values: letters and digits only.
pub(crate) fn alphanumeric(form: &Pairs, key: &str, max: usize) -> Result<String, ApiError> {
    let value = param(form, key).ok_or_else(|| required(key))?;
    if value.len() > max || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad_request(
            &format!("Invalid {key}: must be 1 to {max} letters and digits"),
            key,
        ));
    }
    Ok(value.to_string())
}

/// The indexes `N` of the keys `prefix[N]…`, in order, each once.
pub(crate) fn indices(form: &Pairs, prefix: &str) -> Vec<usize> {
    let mut found: Vec<usize> = form
        .iter()
        .filter_map(|(k, _)| {
            let rest = k.strip_prefix(prefix)?.strip_prefix('[')?;
            rest.split_once(']')?.0.parse().ok()
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The values of the array `key`: `key[]` in the order sent, then `key[N]` by index; each
/// with its parameter's name, for errors.
pub(crate) fn list(form: &Pairs, key: &str) -> Vec<(String, String)> {
    let appended = format!("{key}[]");
    let mut values: Vec<(String, String)> = form
        .iter()
        .filter(|(k, _)| *k == appended)
        .cloned()
        .collect();
    for i in indices(form, key) {
        let name = format!("{key}[{i}]");
        if let Some(value) = param(form, &name) {
            values.push((name, value.to_string()));
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(raw: &str) -> Pairs {
        form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }

    const KNOWN: [&str; 4] = [
        "mode",
        "metadata[*]",
        "custom_fields[#][label][custom]",
        "shipping_address_collection[allowed_countries][#]",
    ];

    #[test]
    fn unknown_parameters_are_named_up_to_their_first_unknown_segment() {
        let blamed = |raw: &str| unknown_parameter(&form(raw), &KNOWN).map(|e| e.param.unwrap());
        assert_eq!(blamed("mode=payment&metadata[a]=1&metadata[2]=x"), None);
        assert_eq!(
            blamed("custom_fields[0][label][custom]=A&custom_fields[1][label][custom]=B"),
            None
        );
        assert_eq!(
            blamed(
                "shipping_address_collection[allowed_countries][]=FR&shipping_address_collection[allowed_countries][1]=DE"
            ),
            None
        );
        assert_eq!(blamed("color=red").as_deref(), Some("color"));
        assert_eq!(blamed("color[a][b]=red").as_deref(), Some("color"));
        assert_eq!(
            blamed("custom_fields[0][label][style]=x").as_deref(),
            Some("custom_fields[0][label][style]")
        );
        assert_eq!(
            blamed("custom_fields[0][bogus][x]=1").as_deref(),
            Some("custom_fields[0][bogus]")
        );
        let object = unknown_parameter(&form("shipping_address_collection=FR"), &KNOWN).unwrap();
        assert_eq!(object.code, Some("parameter_invalid"));
        assert_eq!(object.message, "Invalid object");
    }

    #[test]
    fn lists_take_appended_and_indexed_values() {
        let f = form("c[]=FR&c[1]=BE&c[]=DE&c[0]=IT&c[10]=LU");
        let values: Vec<String> = list(&f, "c").into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["FR", "DE", "IT", "BE", "LU"]);
        assert_eq!(indices(&f, "c"), [0, 1, 10]);
    }
}
