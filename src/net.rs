//! The outbound HTTP client shared by HTTP tools (and, later, remote model providers).

use std::sync::Once;

/// A reqwest client with edgestra's user agent and rustls on the `ring` provider.
pub fn http_client() -> Result<reqwest::Client, String> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first, which serves just as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .user_agent(concat!("edgestra/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot create the HTTP client: {e}"))
}
