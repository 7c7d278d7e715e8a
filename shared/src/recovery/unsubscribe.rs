//! Unsubscribe links: `GET /recovery/unsubscribe?token=…` (and RFC 8058 one-click `POST`).
//! The token names the hashed address and is signed with HMAC-SHA256, so nobody can opt
//! somebody else out, and the address itself never appears in a URL.

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::Sha256;

use super::{Recovery, RecoveryError};
use crate::config::Secret;
use crate::http as api;
use crate::mail::{EmailAddress, Mailer};
use crate::pages::{FAVICON, PAGES_CSS, escape_html};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token: not a valid unsubscribe token")]
pub struct InvalidToken;

fn mac(key: &Secret, address_hash: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(b"unsubscribe:v1:");
    mac.update(address_hash.as_bytes());
    mac
}

/// `<address hash>.<hex HMAC>`.
#[must_use]
pub fn token(key: &Secret, address_hash: &str) -> String {
    format!(
        "{address_hash}.{}",
        hex::encode(mac(key, address_hash).finalize().into_bytes())
    )
}

/// The address hash a token stands for, if its signature holds (constant-time comparison).
///
/// # Errors
/// A token of the wrong shape, or whose signature does not hold.
pub fn verify(key: &Secret, token: &str) -> Result<String, InvalidToken> {
    let (hash, signature) = token.split_once('.').ok_or(InvalidToken)?;
    if hash.len() != 64
        || !hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(InvalidToken);
    }
    let mut expected = [0u8; 32];
    hex::decode_to_slice(signature, &mut expected).map_err(|_| InvalidToken)?;
    mac(key, hash)
        .verify_slice(&expected)
        .map_err(|_| InvalidToken)?;
    Ok(hash.to_string())
}

impl<M: Mailer> Recovery<M> {
    /// The link every recovery email carries, for `address`.
    #[must_use]
    pub fn unsubscribe_url(&self, address: &EmailAddress) -> String {
        format!(
            "{}/recovery/unsubscribe?token={}",
            self.config.public_base_url,
            token(&self.config.unsubscribe_secret, &address.hashed())
        )
    }

    /// `GET|POST /recovery/unsubscribe?token=…`.
    ///
    /// # Errors
    /// A token that does not verify (400), or DynamoDB failed.
    pub async fn unsubscribe(&self, request: &Request) -> Result<(), RecoveryError> {
        let token = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let hash = verify(&self.config.unsubscribe_secret, &token)?;
        self.store.unsubscribe(&hash, self.clock.now()).await?;
        tracing::info!(recipient = hash, "unsubscribed from recovery emails");
        Ok(())
    }

    /// The function's one route: `POST` answers JSON (one-click), `GET` a page.
    pub(super) async fn route(&self, request: &Request) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::POST {
            return api::method_not_allowed("GET, POST");
        }
        match self.unsubscribe(request).await {
            Err(err) => api::error(&err),
            Ok(()) if request.method() == Method::POST => {
                api::json(StatusCode::OK, &serde_json::json!({"unsubscribed": true}))
            }
            Ok(()) => {
                // The token names an address, not an account: the platform's page.
                let sender = self.sender(None);
                let mut response = Response::new(Body::from(page(
                    &sender.shop_name,
                    sender.shop_url.as_deref(),
                )));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
        }
    }
}

/// The page a customer sees after following the link: the merchant's name, linked to
/// `MERCHANT_SHOP_URL` when it is set (and an http(s) URL), everything printed escaped.
fn page(merchant: &str, shop_url: Option<&str>) -> String {
    let name = escape_html(merchant);
    let shop = shop_url
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .map(escape_html);
    let (header, back) = match &shop {
        Some(url) => (
            format!(r#"<a class="merchant" href="{url}">{name}</a>"#),
            format!(r#"<p><a id="back-to-shop" href="{url}">Back to {name}</a></p>"#),
        ),
        None => (
            format!(r#"<span class="merchant">{name}</span>"#),
            String::new(),
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>You are unsubscribed · {name}</title>
<link rel="icon" href="{FAVICON}">
<style>
{PAGES_CSS}</style>
</head>
<body>
<header class="site"><div class="site-inner">{header}</div></header>
<main>
<div class="card" id="unsubscribed">
<h1>You are unsubscribed</h1>
<p>You will not receive cart reminders any more.</p>
{back}</div>
</main>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_merchant_and_links_back_to_the_shop() {
        let html = page("Demo Shop", Some("https://shop.example/"));
        assert!(html.contains("<h1>You are unsubscribed</h1>"));
        assert!(html.contains("You will not receive cart reminders any more."));
        assert!(html.contains(r#"<a class="merchant" href="https://shop.example/">Demo Shop</a>"#));
        assert!(html.contains(r#"href="https://shop.example/">Back to Demo Shop</a>"#));
        assert!(
            html.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            )
        );
        assert!(html.contains(r#"<link rel="icon" href="data:image/svg+xml,"#));
        assert!(html.contains(PAGES_CSS), "the shared stylesheet, inline");
    }

    #[test]
    fn without_a_shop_url_there_is_no_link() {
        for shop in [None, Some("javascript:alert(1)"), Some("")] {
            let html = page("Demo Shop", shop);
            assert!(!html.contains("<a "), "{shop:?}");
            assert!(html.contains(r#"<span class="merchant">Demo Shop</span>"#));
        }
    }

    #[test]
    fn the_page_escapes_what_it_prints() {
        let html = page(
            r#"<script>alert("x")</script> & 'Co'"#,
            Some(r#"https://shop.example/?a=1&b="><script>"#),
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;Co&#39;")
        );
        assert!(
            html.contains(r#"href="https://shop.example/?a=1&amp;b=&quot;&gt;&lt;script&gt;""#)
        );
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let key = Secret::new("unsubscribe-signing-key-of-32-bytes!");
        let hash = "a".repeat(64);
        let token = token(&key, &hash);
        assert_eq!(verify(&key, &token), Ok(hash.clone()));
        let other = Secret::new("another-key-another-key-another-key");
        assert_eq!(verify(&other, &token), Err(InvalidToken));
        let tampered = token.replacen('a', "b", 1);
        assert_eq!(verify(&key, &tampered), Err(InvalidToken));
        for bad in [
            "",
            ".",
            "abc",
            &format!("{hash}."),
            &format!("{hash}.zz"),
            &format!("{}.{}", "A".repeat(64), "0".repeat(64)),
        ] {
            assert_eq!(verify(&key, bad), Err(InvalidToken), "{bad}");
        }
    }
}
