//! TLS client configuration for `tls://` upstreams (`tls [CERT KEY] [CA]`).

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The files named by a `tls` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// Client certificate and key.
    pub cert_key: Option<(String, String)>,
    /// CA bundle replacing the built-in roots.
    pub ca: Option<String>,
}

impl TlsFiles {
    /// Interprets 0–3 `tls` arguments as CoreDNS does: `CA`, `CERT KEY`, or `CERT KEY CA`.
    pub fn from_args(args: &[String]) -> Result<TlsFiles, String> {
        let files = match args {
            [] => TlsFiles::default(),
            [ca] => TlsFiles { cert_key: None, ca: Some(ca.clone()) },
            [c, k] => TlsFiles { cert_key: Some((c.clone(), k.clone())), ca: None },
            [c, k, ca] => TlsFiles { cert_key: Some((c.clone(), k.clone())), ca: Some(ca.clone()) },
            _ => return Err("Wrong argument count or unexpected line ending".to_string()),
        };
        // Load once now so that bad files fail at setup, as in CoreDNS.
        files.client_config()?;
        Ok(files)
    }

    /// Builds a rustls client configuration.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for cert in read_certs(ca)? {
                    roots.add(cert).map_err(|e| format!("failed to add CA from {ca}: {e}"))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match &self.cert_key {
            Some((cert, key)) => {
                let certs = read_certs(cert)?;
                let key = read_key(key)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| format!("could not load TLS cert: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

fn open(path: &str) -> Result<BufReader<File>, String> {
    File::open(path).map(BufReader::new).map_err(|e| format!("open {path}: {e}"))
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut open(path)?).collect();
    let certs = certs.map_err(|e| format!("could not load TLS cert: {e}"))?;
    if certs.is_empty() {
        return Err(format!("could not load TLS cert: no certificates in {path}"));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|e| format!("could not load TLS cert: {e}"))?
        .ok_or_else(|| format!("could not load TLS cert: no private key in {path}"))
}
