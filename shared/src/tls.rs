//! The bundle's one TLS client configuration (rustls with ring), built once per process and
//! shared by every HTTPS client: the Stripe client and the AWS SDK's transport.
//!
//! Roots come from the system's CA bundle file, read and parsed once: `SSL_CERT_FILE` when
//! set, else the first bundle found among the well-known paths (`provided.al2023`, Lambda's
//! OS-only runtime, has `/etc/pki/tls/certs/ca-bundle.crt`). Reading only the bundle, not the
//! certificate directory beside it, is what keeps it off the cold start: a directory scan
//! reads and parses every certificate a second time (on Debian, ~150 files beside the bundle
//! that holds them all). Only when no bundle file exists is the full platform probe used.
//! The system's bundle rather than roots compiled in (`webpki-roots`): the OS image's roots
//! are patched with the image, and a binary's would be frozen at build time.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;

/// The CA bundle of the distributions the bundle runs on: Amazon Linux 2023 / Fedora /
/// RHEL, then Debian / Ubuntu / Alpine, then openSUSE.
const BUNDLE_PATHS: [&str; 3] = [
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/ca-bundle.pem",
];

static CLIENT_CONFIG: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let mut roots = rustls::RootCertStore::empty();
    let (valid, invalid) = roots.add_parsable_certificates(root_certificates());
    if invalid > 0 {
        tracing::debug!(valid, invalid, "some root certificates could not be parsed");
    }
    if valid == 0 {
        tracing::error!("no root certificates: every HTTPS call will fail");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
});

fn root_certificates() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let file = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            BUNDLE_PATHS
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .map(Path::to_path_buf)
        });
    let result = match file {
        Some(file) => rustls_native_certs::load_certs_from_paths(Some(&file), None),
        None => rustls_native_certs::load_native_certs(),
    };
    for error in &result.errors {
        tracing::warn!(error = %error, "reading root certificates");
    }
    result.certs
}

/// The shared client configuration (built on first use).
#[must_use]
pub fn client_config() -> Arc<rustls::ClientConfig> {
    CLIENT_CONFIG.clone()
}

/// An HTTP/1.1 connector speaking TLS with the shared configuration, and plain HTTP for
/// loopback endpoints (moto, the Stripe simulator); `connect_timeout` bounds the TCP connect.
#[must_use]
pub fn https_connector(
    connect_timeout: Option<Duration>,
) -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    // The TLS layer above decides the scheme; the TCP layer must accept `https` URIs.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls::ClientConfig::clone(&CLIENT_CONFIG))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_bundle_gives_roots() {
        assert!(
            root_certificates().len() > 50,
            "the system bundle holds the public roots"
        );
    }

    #[test]
    fn one_configuration_is_shared() {
        assert!(Arc::ptr_eq(&client_config(), &client_config()));
    }
}
