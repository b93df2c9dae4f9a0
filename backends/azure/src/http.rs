//! The HTTPS client the official crates send through, and the `auto` credential chain.

use crate::AzureConfig;
use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport};
use std::error::Error as StdError;
use std::sync::Arc;
use vaultbridge_backend_core::BackendError;

/// One reqwest client (rustls, the platform's roots plus `ca_file`) for the vault and
/// for Entra, wrapped so that an untrusted certificate fails at once.
pub(crate) fn transport(config: &AzureConfig) -> Result<Transport, BackendError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout);
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|err| {
            BackendError::invalid_config(format!("cannot read ca_file `{}`: {err}", path.display()))
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
            BackendError::invalid_config(format!(
                "ca_file `{}` holds no usable PEM certificate: {err}",
                path.display()
            ))
        })?;
        if certificates.is_empty() {
            return Err(BackendError::invalid_config(format!(
                "ca_file `{}` holds no PEM certificate",
                path.display()
            )));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    for (host, address) in &config.resolve {
        builder = builder.resolve(host, *address);
    }
    let client = builder.build().map_err(|err| {
        BackendError::invalid_config(format!("cannot build the HTTPS client: {err}"))
    })?;
    Ok(Transport::new(Arc::new(CertificateAware { client })))
}

/// The official pipeline retries connection errors, and an untrusted certificate
/// surfaces as one; retrying cannot fix a certificate, so it is reported at once as a
/// non-retryable error that names the problem.
#[derive(Debug)]
struct CertificateAware {
    client: reqwest::Client,
}

#[async_trait]
impl HttpClient for CertificateAware {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        self.client
            .execute_request(request)
            .await
            .map_err(|err| match certificate_problem(&err) {
                Some(problem) => Error::new(
                    ErrorKind::Other,
                    UntrustedCertificate {
                        host: request.url().host_str().unwrap_or("the server").to_owned(),
                        problem,
                    },
                ),
                None => err,
            })
    }
}

/// A server certificate that the daemon does not trust.
#[derive(Debug)]
pub(crate) struct UntrustedCertificate {
    host: String,
    problem: String,
}

impl std::fmt::Display for UntrustedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the TLS certificate of {} is not trusted ({}); add its issuing CA to `ca_file`",
            self.host, self.problem
        )
    }
}

impl StdError for UntrustedCertificate {}

fn certificate_problem(err: &(dyn StdError + 'static)) -> Option<String> {
    match vaultbridge_backend_core::find_cause::<rustls::Error>(err)? {
        rustls::Error::InvalidCertificate(problem) => Some(format!("{problem:?}")),
        _ => None,
    }
}

/// Tries credentials in order and uses the first that yields a token: the `auto`
/// credential's managed identity, then Azure CLI login.
#[derive(Debug)]
pub(crate) struct FirstThatWorks {
    credentials: Vec<(&'static str, Arc<dyn TokenCredential>)>,
}

impl FirstThatWorks {
    pub(crate) fn new(credentials: Vec<(&'static str, Arc<dyn TokenCredential>)>) -> Self {
        Self { credentials }
    }
}

#[async_trait]
impl TokenCredential for FirstThatWorks {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let mut failures = Vec::new();
        for (name, credential) in &self.credentials {
            match credential.get_token(scopes, options.clone()).await {
                Ok(token) => return Ok(token),
                Err(err) => failures.push(format!("{name}: {err}")),
            }
        }
        Err(Error::with_message(
            ErrorKind::Credential,
            format!("no credential produced a token ({})", failures.join("; ")),
        ))
    }
}
