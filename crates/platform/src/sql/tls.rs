//! TLS to Postgres, for URLs with `sslmode=require`: the server's certificate must chain to the
//! system's trusted roots, or to the certificates in the file `PGSSLROOTCERT` names (libpq's
//! variable: a managed database's CA bundle, or a self-signed server's own certificate), and
//! must name the host of the URL.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{ErrorKind, Result, SqlError};

/// The connector every `sslmode=require` connection of the process uses (the roots are read
/// once).
pub(super) fn connector() -> Result<MakeRustlsConnect> {
    static CONFIG: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>> =
        OnceLock::new();
    match CONFIG.get_or_init(|| client_config().map(Arc::new)) {
        Ok(config) => Ok(MakeRustlsConnect::new(rustls::ClientConfig::clone(config))),
        Err(message) => Err(SqlError::new(ErrorKind::Other, message.clone())),
    }
}

fn client_config() -> std::result::Result<rustls::ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, as by every other client.
        let _ = roots.add(cert);
    }
    if let Ok(path) = std::env::var("PGSSLROOTCERT") {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
            .and_then(Iterator::collect)
            .map_err(|error| format!("PGSSLROOTCERT={path}: {error}"))?;
        if certs.is_empty() {
            return Err(format!("PGSSLROOTCERT={path}: no certificate in the file"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|error| format!("PGSSLROOTCERT={path}: {error}"))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "sslmode=require, but no trusted root certificate was found (install the system's \
             CA certificates or set PGSSLROOTCERT)"
                .to_owned(),
        );
    }
    // ring rather than rustls' default aws-lc-rs, whose large C build would join librdkafka's
    // and SQLite's in every cold build. rustls now marks ring's provider deprecated because it
    // has no post-quantum key exchange; moving to aws-lc-rs is the way to gain one.
    #[expect(
        deprecated,
        reason = "ring's provider lacks post-quantum key exchange, nothing more"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS set-up: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
