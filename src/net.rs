//! The HTTP stack every outbound client shares (forge APIs, notification
//! sinks, JWKS documents): hyper over rustls.

/// An HTTPS (or plain HTTP) connector over rustls with the system's roots;
/// without them, https fails with a certificate error and http still works.
pub fn https_connector() -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b.https_or_http().enable_http1().build(),
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
            .https_or_http()
            .enable_http1()
            .build(),
    }
}
