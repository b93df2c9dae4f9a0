//! How a connection reaches its Jira site: extra trusted roots (`ca_file`), fixed
//! addresses for host names (`resolve`, like curl's `--resolve`), and the proxy
//! variables of the daemon's environment, which reqwest reads when a client is built.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A connection's network settings. Connections with equal settings share one HTTP
/// client, so the value is its key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Network {
    /// Where the extra roots came from, for messages.
    pub ca_file: Option<PathBuf>,
    /// The `ca_file`'s certificates (DER), read and checked when the config is loaded,
    /// so that a bad file is a located config error rather than a failure on first use.
    pub extra_roots: Vec<Vec<u8>>,
    /// Host name (lower case) to address; port 0 takes the URL's port or 443.
    pub resolve: Vec<(String, SocketAddr)>,
}

/// Reads a PEM bundle of CA certificates and checks that each one can be a trust
/// anchor. Other PEM sections (a key, a CRL) are skipped, as curl's `--cacert` does.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem =
        std::fs::read(path).map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
    let mut roots = Vec::new();
    for (index, certificate) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let certificate = certificate.map_err(|err| {
            format!(
                "`{}` is not a readable PEM file (certificate {}): {err}",
                path.display(),
                index + 1
            )
        })?;
        rustls::RootCertStore::empty()
            .add(certificate.clone())
            .map_err(|err| {
                format!(
                    "certificate {} in `{}` cannot be a trusted root: {err}",
                    index + 1,
                    path.display()
                )
            })?;
        roots.push(certificate.to_vec());
    }
    if roots.is_empty() {
        return Err(format!(
            "`{}` holds no PEM certificate (a `-----BEGIN CERTIFICATE-----` block)",
            path.display()
        ));
    }
    Ok(roots)
}

/// One `resolve` entry: a host name alone, and an IP address with an optional port.
pub(crate) fn resolve_entry(host: &str, address: &str) -> Result<(String, SocketAddr), String> {
    if host.is_empty() || host.contains([':', '/', '@', ' ', '[', ']']) {
        return Err(format!(
            "`{host}` is not a host name: write the host alone, e.g. `jira.corp.example` (the port comes from the URL)"
        ));
    }
    let address = address.trim();
    let parsed = address
        .parse::<SocketAddr>()
        .or_else(|_| address.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)));
    match parsed {
        Ok(address) => Ok((host.to_ascii_lowercase(), address)),
        Err(_) => Err(format!(
            "expected an IP address, optionally with a port, such as `10.0.0.5` or `10.0.0.5:443`, got `{address}`"
        )),
    }
}

/// An HTTPS client for these settings: the platform's roots plus the extra ones, the
/// fixed addresses, and reqwest's default proxy handling (`HTTPS_PROXY`, `HTTP_PROXY`,
/// `ALL_PROXY`, `NO_PROXY`, read from the environment now).
pub(crate) fn client(network: &Network) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    for root in &network.extra_roots {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(root)?);
    }
    for (host, address) in &network.resolve {
        builder = builder.resolve(host, *address);
    }
    builder.build()
}

/// What went wrong with a request, said so that an untrusted certificate (a corporate
/// TLS proxy, a private CA) names its fix instead of reading like an outage.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    match untrusted_certificate(err) {
        Some(problem) => {
            let host = err
                .url()
                .and_then(|url| url.host_str())
                .unwrap_or("the server");
            format!(
                "the TLS certificate of {host} is not trusted ({problem}); add the CA that issued it to the connection's `ca_file`"
            )
        }
        None => vaultbridge_backend_core::describe_chain(err),
    }
}

pub(crate) fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    match vaultbridge_backend_core::find_cause::<rustls::Error>(err)? {
        rustls::Error::InvalidCertificate(problem) => Some(format!("{problem:?}")),
        _ => None,
    }
}

/// A self-signed CA certificate (PEM) made for one test.
#[cfg(test)]
pub(crate) fn test_ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_ca_pem as ca_pem;

    #[test]
    fn a_bundle_of_two_cas_gives_two_roots_and_skips_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corp.pem");
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        std::fs::write(&path, format!("{}{key}{}", ca_pem(), ca_pem())).unwrap();
        let roots = read_ca_file(&path).unwrap();
        assert_eq!(roots.len(), 2);
        let network = Network {
            ca_file: Some(path),
            extra_roots: roots,
            resolve: vec![resolve_entry("jira.corp.example", "10.0.0.5").unwrap()],
        };
        client(&network).unwrap();
    }

    #[test]
    fn unreadable_empty_and_corrupt_ca_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_ca_file(&dir.path().join("nope.pem")).unwrap_err();
        assert!(
            missing.contains("cannot read") && missing.contains("nope.pem"),
            "{missing}"
        );

        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "just text\n").unwrap();
        let empty = read_ca_file(&path).unwrap_err();
        assert!(empty.contains("holds no PEM certificate"), "{empty}");

        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let corrupt = read_ca_file(&path).unwrap_err();
        assert!(corrupt.contains("certificate 1"), "{corrupt}");
    }

    #[test]
    fn resolve_takes_a_host_and_an_address_with_or_without_a_port() {
        assert_eq!(
            resolve_entry("Jira.Corp.Example", "10.0.0.5:8443").unwrap(),
            ("jira.corp.example".into(), "10.0.0.5:8443".parse().unwrap())
        );
        assert_eq!(
            resolve_entry("jira.corp.example", "fd00::5").unwrap().1,
            "[fd00::5]:0".parse().unwrap()
        );
        let port_in_key = resolve_entry("jira.corp.example:443", "10.0.0.5").unwrap_err();
        assert!(port_in_key.contains("host alone"), "{port_in_key}");
        let name = resolve_entry("jira.corp.example", "jira-lb.internal").unwrap_err();
        assert!(name.contains("expected an IP address"), "{name}");
    }
}
