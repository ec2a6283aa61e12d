//! The `prometheus { tls CONFIG_PATH }` web configuration (Prometheus exporter-toolkit format):
//! `tls_server_config` with `cert_file`, `key_file`, `client_auth_type`, `client_ca_file`,
//! `min_version`, `max_version`. Relative paths are taken from the file's directory. A file
//! without TLS settings means plain HTTP, as with exporter-toolkit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

/// The `tls_server_config` settings we honour.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate chain (PEM).
    pub cert_file: String,
    /// Server private key (PEM).
    pub key_file: String,
    /// Go's client auth policy name (`NoClientCert`, `RequestClientCert`, `RequireAnyClientCert`,
    /// `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`).
    pub client_auth_type: String,
    /// CA bundle for verifying client certificates.
    pub client_ca_file: String,
    /// `TLS12` (default) or `TLS13`.
    pub min_version: String,
    /// `TLS13` (default) or `TLS12`.
    pub max_version: String,
}

impl TlsSettings {
    fn enabled(&self) -> bool {
        !(self.cert_file.is_empty()
            && self.key_file.is_empty()
            && self.client_ca_file.is_empty()
            && self.client_auth_type.is_empty())
    }
}

/// Strips a trailing comment and surrounding quotes from a YAML scalar.
fn scalar(raw: &str) -> String {
    let raw = raw.trim();
    for q in ['"', '\''] {
        if let Some(inner) = raw.strip_prefix(q).and_then(|r| r.split_once(q)).map(|(v, _)| v) {
            return inner.to_string();
        }
    }
    raw.split(" #").next().unwrap_or("").trim().to_string()
}

/// Reads the web configuration at `path`. `Ok(None)` when it asks for no TLS.
pub fn load(path: &str) -> Result<Option<TlsSettings>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("open {path}: {e}"))?;
    let settings = parse(&text)?;
    if !settings.enabled() {
        return Ok(None);
    }
    let dir = Path::new(path).parent().map(Path::to_path_buf).unwrap_or_default();
    let join = |p: &str| -> String {
        if p.is_empty() || Path::new(p).is_absolute() {
            p.to_string()
        } else {
            dir.join(p).to_string_lossy().into_owned()
        }
    };
    Ok(Some(TlsSettings {
        cert_file: join(&settings.cert_file),
        key_file: join(&settings.key_file),
        client_ca_file: join(&settings.client_ca_file),
        ..settings
    }))
}

/// Parses the YAML subset exporter-toolkit files use.
pub fn parse(text: &str) -> Result<TlsSettings, String> {
    let mut s = TlsSettings::default();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if trimmed.starts_with("- ") || trimmed == "-" {
            if indented {
                continue; // list items (cipher_suites, curve_preferences, ...) are not used
            }
            return Err(format!("yaml: line {}: cannot unmarshal a sequence into the web config", n + 1));
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            return Err(format!("yaml: line {}: cannot unmarshal !!str `{trimmed}` into the web config", n + 1));
        };
        let key = key.trim();
        let value = scalar(value);
        if !indented {
            match key {
                "tls_server_config" | "http_server_config" | "rate_limit" => section = key.to_string(),
                "basic_auth_users" => return Err("basic_auth_users is not supported by nodecache".to_string()),
                _ => return Err(format!("yaml: unmarshal errors:\n  line {}: field {key} not found", n + 1)),
            }
            if !value.is_empty() && value != "{}" {
                return Err(format!("yaml: line {}: {key} must be a mapping", n + 1));
            }
            continue;
        }
        if section != "tls_server_config" {
            continue;
        }
        match key {
            "cert_file" => s.cert_file = value,
            "key_file" => s.key_file = value,
            "client_auth_type" => s.client_auth_type = value,
            "client_ca_file" => s.client_ca_file = value,
            "min_version" => s.min_version = value,
            "max_version" => s.max_version = value,
            "cert" | "key" | "client_ca" => return Err(format!("inline {key} is not supported by nodecache")),
            "cipher_suites" | "curve_preferences" | "prefer_server_cipher_suites" | "client_allowed_sans" => {}
            _ => return Err(format!("yaml: unmarshal errors:\n  line {}: field {key} not found", n + 1)),
        }
    }
    Ok(s)
}

fn read_pem(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(PathBuf::from(path)).map_err(|e| format!("failed to read {what} ({path}): {e}"))
}

/// Builds the rustls server configuration for `s` (errors in exporter-toolkit's words).
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    if s.cert_file.is_empty() {
        return Err("missing one of cert or cert_file".to_string());
    }
    if s.key_file.is_empty() {
        return Err("missing one of key or key_file".to_string());
    }
    let cert_pem = read_pem(&s.cert_file, "cert_file")?;
    let key_pem = read_pem(&s.key_file, "key_file")?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("failed to load X509KeyPair: {e}"))?;
    if certs.is_empty() {
        return Err("failed to load X509KeyPair: tls: failed to find any PEM data in certificate input".to_string());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("failed to load X509KeyPair: {e}"))?
        .ok_or("failed to load X509KeyPair: tls: failed to find any PEM data in key input")?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    if !s.client_ca_file.is_empty() {
        let pem = std::fs::read(&s.client_ca_file).map_err(|e| format!("open {}: {e}", s.client_ca_file))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
            let _ = roots.add(cert);
        }
    }
    let roots = Arc::new(roots);
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        let b = if optional { b.allow_unauthenticated() } else { b };
        b.build().map_err(|e| format!("client_ca_file: {e}"))
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match s.client_auth_type.as_str() {
        "" | "NoClientCert" => {
            if !s.client_ca_file.is_empty() {
                return Err("client CA's have been configured without a Client Auth Policy".to_string());
            }
            None
        }
        "RequestClientCert" => Some(Arc::new(AnyClientCert { mandatory: false, provider: provider.clone() })),
        "RequireAnyClientCert" | "RequireClientCert" => {
            Some(Arc::new(AnyClientCert { mandatory: true, provider: provider.clone() }))
        }
        "VerifyClientCertIfGiven" => Some(verified(true)?),
        "RequireAndVerifyClientCert" => Some(verified(false)?),
        other => return Err(format!("invalid ClientAuth: {other}")),
    };

    let tls12 =
        s.min_version.is_empty() || s.min_version == "TLS12" || s.min_version == "TLS11" || s.min_version == "TLS10";
    let tls13 = s.max_version.is_empty() || s.max_version == "TLS13";
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(format!("no TLS version between {} and {}", s.min_version, s.max_version));
    }
    let builder =
        ServerConfig::builder_with_provider(provider).with_protocol_versions(&versions).map_err(|e| e.to_string())?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| format!("failed to load X509KeyPair: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Go's `RequestClientCert` / `RequireAnyClientCert`: a client certificate is asked for (or
/// required) but not verified against any CA; only the handshake signature is checked.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parses_exporter_toolkit_files() {
        let s = parse(
            "tls_server_config:\n  cert_file: \"../server.crt\"\n  key_file: '../server.key' # key\n  client_auth_type: \"RequireAnyClientCert\"\n  cipher_suites:\n    - TLS_AES_128_GCM_SHA256\n",
        )
        .unwrap();
        assert_eq!(
            s,
            TlsSettings {
                cert_file: "../server.crt".to_string(),
                key_file: "../server.key".to_string(),
                client_auth_type: "RequireAnyClientCert".to_string(),
                ..TlsSettings::default()
            }
        );
        assert_eq!(parse("").map(|s| s.enabled()), Ok(false));
        assert!(parse("hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n").is_err());
        assert!(parse("basic_auth_users:\n  alice: $2y$10$x\n").is_err());
    }

    #[test]
    fn missing_cert_is_reported() {
        let s = TlsSettings { key_file: "k".to_string(), ..TlsSettings::default() };
        assert_eq!(server_config(&s).err(), Some("missing one of cert or cert_file".to_string()));
    }
}
