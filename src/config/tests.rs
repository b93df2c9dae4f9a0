use super::*;
use crate::jira::config::{Deployment, EmailSource};
use std::path::PathBuf;
use vaultbridge_backend_file::{FileConfig, FileFormat};

/// One backend's settings, as its own crate's type.
fn settings<'c, T: 'static>(config: &'c Config, name: &str) -> &'c T {
    config.backends[name]
        .settings
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("backend `{name}` is not a {}", std::any::type_name::<T>()))
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        text,
        "test.yaml",
        Path::new("/etc/vb"),
        &vars(&[("HOME", "/home/u")]),
    )
}

pub(super) fn problems(text: &str) -> Vec<String> {
    let err = parse(text).expect_err("invalid config");
    err.to_string().lines().map(str::to_owned).collect()
}

pub(super) const MINIMAL: &str =
    "server:\n  tcp: 127.0.0.1:50051\nbackends:\n  e:\n    type: env\n";

#[test]
fn the_example_config_parses_with_no_variables_set() {
    let config = Config::parse(
        EMBEDDED_DEFAULT,
        "config.example.yaml",
        Path::new(""),
        &vars(&[]),
    )
    .expect("config.example.yaml is valid");
    assert_eq!(
        config.server.unix_socket,
        Some(PathBuf::from("/tmp/vaultbridge.sock"))
    );
    assert_eq!(config.server.unix_socket_mode, 0o600);
    assert!(config.definitions.len() >= 6);
    assert!(!config.definitions["signing-key"].trim);
    assert_eq!(
        config.definitions["warehouse-password"].ttl,
        Some(Duration::from_secs(60))
    );
    assert_eq!(config.backends["local"].kind, "file");
    assert_eq!(
        settings::<FileConfig>(&config, "local"),
        &FileConfig::new("examples/secrets.dev.yaml", FileFormat::Yaml)
    );
}

/// The example's file-backed definitions point at entries the example secrets file
/// has, so `serve` without `--config` answers them. Tests run in the crate's root, where
/// the example's relative path leads.
#[tokio::test]
async fn the_example_file_definitions_resolve_against_the_example_secrets() {
    let config = Config::embedded_default(&vars(&[])).expect("valid");
    let backends = registry::build_all(&config.backends).await.expect("built");
    let mut resolved = 0;
    let sources = config
        .definitions
        .iter()
        .flat_map(|(name, definition)| definition.sources.iter().map(move |s| (name, s)));
    for (name, source) in sources {
        if config.backends[&source.backend].kind != "file" {
            continue;
        }
        let fetched = backends[&source.backend]
            .fetch(&source.secret)
            .await
            .unwrap_or_else(|err| panic!("definition `{name}`: {err}"));
        assert!(
            !fetched.value.expose().is_empty(),
            "definition `{name}` is empty"
        );
        resolved += 1;
    }
    assert!(resolved >= 5, "only {resolved} file-backed definitions");
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let config = parse(
        "server:\n  unix_socket: run/vb.sock\nbackends:\n  f:\n    type: file\n    path: s.json\n",
    )
    .expect("valid");
    assert_eq!(
        config.server.unix_socket,
        Some(PathBuf::from("/etc/vb/run/vb.sock"))
    );
    assert_eq!(
        settings::<FileConfig>(&config, "f"),
        &FileConfig::new("/etc/vb/s.json", FileFormat::Json)
    );
}

#[test]
fn unknown_field_names_file_line_and_path() {
    let lines = problems(&format!(
        "{MINIMAL}definitions:\n  a:\n    backend: e\n    secret: X\n    tll: 5m\n"
    ));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("test.yaml:10:5: definitions.a.tll: unknown field `tll`"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("ttl"),
        "lists the expected fields: {lines:?}"
    );
}

#[test]
fn unknown_top_level_section_is_an_error() {
    let lines = problems("server:\n  tcp: 127.0.0.1:1\ncahce:\n  ttl: 1m\n");
    assert!(lines[0].starts_with("test.yaml:3:1:"), "{lines:?}");
    assert!(lines[0].contains("unknown field `cahce`"), "{lines:?}");
}

#[test]
fn validation_errors_are_all_reported_with_locations() {
    let lines = problems(&format!(
        "{MINIMAL}cache:\n  ttl: five minutes\n  max_entries: 0\ndefinitions:\n  a:\n    backend: nope\n    secret: X\n  b:\n    backend: e\n    secret: X\n    trim: maybe\n"
    ));
    let text = lines.join("\n");
    assert!(
        text.contains("test.yaml:7:8: cache.ttl: expected a duration"),
        "{text}"
    );
    assert!(
        text.contains("test.yaml:8:16: cache.max_entries: expected a whole number"),
        "{text}"
    );
    assert!(
        text.contains("definitions.a.backend: no backend named `nope`; configured backends: e"),
        "{text}"
    );
    assert!(
        text.contains("definitions.b.trim: expected `true` or `false`"),
        "{text}"
    );
}

#[test]
fn backend_fields_are_checked_per_type() {
    let lines = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  e:\n    type: env\n    path: x.yaml\n  f:\n    type: file\n  g:\n    type: vault\n  h:\n    type: file\n    path: s.txt\n",
    );
    let text = lines.join("\n");
    assert!(
        text.contains("backends.e.path: `path` does not apply to `env` backends"),
        "{text}"
    );
    assert!(
        text.contains("backends.f: a `file` backend needs `path`"),
        "{text}"
    );
    assert!(
        text.contains("backends.g.type: unknown backend type `vault`"),
        "{text}"
    );
    assert!(
        text.contains("backends.h.path: cannot tell the file's format"),
        "{text}"
    );
}

#[test]
fn versions_are_refused_for_backends_without_them() {
    let lines = problems(&format!(
        "{MINIMAL}definitions:\n  a:\n    backend: e\n    secret: X\n    version_stage: AWSPREVIOUS\n"
    ));
    assert!(
        lines[0].contains("definitions.a.version_stage: `env` backends have no version stages"),
        "{lines:?}"
    );
}

#[test]
fn bad_definition_names_and_env_variable_names_are_refused() {
    let text = problems(&format!(
        "{MINIMAL}definitions:\n  'bad name':\n    backend: e\n    secret: X\n  ok:\n    backend: e\n    secret: A=B\n"
    ))
    .join("\n");
    assert!(
        text.contains("definitions.bad name: the definition name has ' '"),
        "{text}"
    );
    assert!(
        text.contains("definitions.ok.secret: `A=B` cannot be an environment variable name"),
        "{text}"
    );
}

#[test]
fn a_list_where_a_value_belongs_is_explained() {
    let lines = problems(&format!(
        "{MINIMAL}definitions:\n  a:\n    backend: e\n    secret: [1, 2]\n"
    ));
    assert!(
        lines[0].starts_with("test.yaml:9:13: definitions.a.secret: expected a single value"),
        "{lines:?}"
    );
}

#[test]
fn no_listener_is_an_error() {
    let lines = problems("backends: {}\n");
    assert!(lines[0].contains("server: no listener"), "{lines:?}");
}

#[test]
fn syntax_errors_have_a_location() {
    let lines = problems("server:\n  tcp: [127.0.0.1\n");
    assert!(lines[0].starts_with("test.yaml:"), "{lines:?}");
}

#[test]
fn interpolated_values_cannot_change_the_yaml_structure() {
    let env = vars(&[("SOCK", "/tmp/x.sock\ntcp: 0.0.0.0:1")]);
    let config = Config::parse(
        "server:\n  unix_socket: ${SOCK}\n",
        "t.yaml",
        Path::new(""),
        &env,
    )
    .expect("valid");
    assert_eq!(config.server.tcp, None);
    assert_eq!(
        config.server.unix_socket,
        Some(PathBuf::from("/tmp/x.sock\ntcp: 0.0.0.0:1"))
    );
}

#[test]
fn interpolation_failure_points_at_the_value() {
    let lines = problems("server:\n  unix_socket: ${NOPE}/vb.sock\n");
    assert!(
        lines[0].starts_with(
            "test.yaml:2:16: server.unix_socket: environment variable `NOPE` is not set"
        ),
        "{lines:?}"
    );
}

#[test]
fn numbers_and_booleans_are_read_as_written() {
    let config = parse(&format!(
        "{MINIMAL}cache:\n  max_entries: 500\ndefinitions:\n  a:\n    backend: e\n    secret: X\n    trim: false\n"
    ))
    .expect("valid");
    assert_eq!(config.cache.max_entries, 500);
    assert!(!config.definitions["a"].trim);
}

#[test]
fn an_unquoted_octal_socket_mode_keeps_its_digits() {
    let config =
        parse("server:\n  unix_socket: vb.sock\n  unix_socket_mode: 0660\n").expect("valid");
    assert_eq!(config.server.unix_socket_mode, 0o660);
    let lines = problems("server:\n  unix_socket: vb.sock\n  unix_socket_mode: 0999\n");
    assert!(
        lines[0].contains("server.unix_socket_mode: expected octal"),
        "{lines:?}"
    );
}

#[test]
fn a_definition_defined_twice_is_an_error() {
    let lines = problems(&format!(
        "{MINIMAL}definitions:\n  a:\n    backend: e\n    secret: X\n  a:\n    backend: e\n    secret: Y\n"
    ));
    assert!(lines[0].starts_with("test.yaml:10:"), "{lines:?}");
    assert!(lines[0].contains("duplicate"), "{lines:?}");
}

#[test]
fn a_zero_ttl_is_accepted() {
    let config = parse(&format!(
        "{MINIMAL}definitions:\n  a:\n    backend: e\n    secret: X\n    ttl: 0s\n"
    ))
    .expect("valid");
    assert_eq!(config.definitions["a"].ttl, Some(Duration::ZERO));
}

#[cfg(feature = "aws")]
#[test]
fn an_aws_backend_reads_its_settings() {
    let config = parse(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  aws:\n    type: aws_secrets_manager\n    region: eu-west-1\n    profile: dev\n    endpoint_url: http://127.0.0.1:5000\n    role_arn: arn:aws:iam::123456789012:role/reader\n    external_id: ext\n    operation_timeout: 4s\n    max_attempts: 5\ndefinitions:\n  prev:\n    backend: aws\n    secret: prod/jira\n    key: token\n    version_stage: AWSPREVIOUS\n",
    )
    .expect("valid");
    let aws = settings::<vaultbridge_backend_aws::AwsConfig>(&config, "aws");
    assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(aws.profile.as_deref(), Some("dev"));
    assert_eq!(aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    let role = aws.assume_role.as_ref().expect("assume role");
    assert_eq!(role.role_arn, "arn:aws:iam::123456789012:role/reader");
    assert_eq!(role.external_id.as_deref(), Some("ext"));
    assert_eq!(aws.operation_timeout, Duration::from_secs(4));
    assert_eq!(aws.max_attempts, 5);
    assert_eq!(
        config.definitions["prev"].sources[0].secret.version,
        vaultbridge_backend_core::VersionSelector::Stage("AWSPREVIOUS".into())
    );
}

#[cfg(feature = "aws")]
#[test]
fn aws_settings_are_checked() {
    let text = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  aws:\n    type: aws_secrets_manager\n    endpoint_url: localhost:5000\n    role_arn: reader\n    max_attempts: 0\n    connect_timeout: 0s\n    path: x.yaml\n  noaws:\n    type: aws_secrets_manager\n    external_id: ext\ndefinitions:\n  both:\n    backend: aws\n    secret: s\n    version_id: v1\n    version_stage: AWSCURRENT\n",
    )
    .join("\n");
    for expected in [
        "backends.aws.endpoint_url: expected a URL starting with https://",
        "backends.aws.role_arn: expected a role ARN",
        "backends.aws.max_attempts: expected a number of attempts from 1 to 10",
        "backends.aws.connect_timeout: a timeout must be longer than zero",
        "backends.aws.path: `path` does not apply to `aws_secrets_manager` backends",
        "backends.noaws.external_id: `external_id` only applies with `role_arn`",
        "definitions.both.version_stage: set `version_id` or `version_stage`, not both",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[cfg(not(feature = "aws"))]
#[test]
fn an_aws_backend_without_the_aws_feature_says_so() {
    let lines =
        problems("server:\n  tcp: 127.0.0.1:1\nbackends:\n  aws:\n    type: aws_secrets_manager\n");
    assert!(
        lines[0].contains(
            "backends.aws.type: this vaultbridge was built without AWS Secrets Manager support"
        ),
        "{lines:?}"
    );
}

#[cfg(feature = "azure")]
#[test]
fn an_azure_backend_reads_its_settings() {
    use vaultbridge_backend_azure::{CredentialConfig, SecretSource};
    let config = parse(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  kv:\n    type: azure_key_vault\n    vault_url: https://runner.vault.azure.net\n    credential: client_secret\n    tenant_id: t\n    client_id: c\n    client_secret_env: KV_SECRET\n    authority_host: https://login.microsoftonline.us\n    ca_file: corp.pem\n    request_timeout: 4s\n    operation_timeout: 7s\n    max_attempts: 2\n    resolve:\n      runner.vault.azure.net: 10.0.0.5:443\ndefinitions:\n  jira-token:\n    backend: kv\n    secret: jira-token\n    version_id: 0123abcd\n",
    )
    .expect("valid");
    let azure = settings::<vaultbridge_backend_azure::AzureConfig>(&config, "kv");
    assert_eq!(azure.vault_url, "https://runner.vault.azure.net");
    assert_eq!(
        azure.credential,
        CredentialConfig::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: SecretSource::Env("KV_SECRET".into())
        }
    );
    assert_eq!(
        azure.authority_host.as_deref(),
        Some("https://login.microsoftonline.us")
    );
    assert_eq!(azure.ca_file, Some(PathBuf::from("/etc/vb/corp.pem")));
    assert_eq!(azure.request_timeout, Duration::from_secs(4));
    assert_eq!(azure.operation_timeout, Duration::from_secs(7));
    assert_eq!(azure.max_attempts, 2);
    assert_eq!(
        azure.resolve,
        vec![(
            "runner.vault.azure.net".to_owned(),
            "10.0.0.5:443".parse().unwrap()
        )]
    );
}

#[cfg(feature = "azure")]
#[test]
fn azure_settings_and_secret_names_are_checked_at_load() {
    let text = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  kv:\n    type: azure_key_vault\n    vault_url: http://runner.vault.azure.net\n    credential: managed_identity\n    tenant_id: t\n    authority_host: http://login\n  cs:\n    type: azure_key_vault\n    vault_url: https://x.vault.azure.net\n    credential: client_secret\n    tenant_id: t\n    client_id: c\n  odd:\n    type: azure_key_vault\n    vault_url: https://y.vault.azure.net\n    credential: magic\ndefinitions:\n  jira:\n    backend: kv\n    secret: jira_token\n  staged:\n    backend: kv\n    secret: jira-token\n    version_stage: AWSPREVIOUS\n",
    )
    .join("\n");
    for expected in [
        "backends.kv.vault_url: expected an https:// vault URL",
        "backends.kv.tenant_id: `tenant_id` does not apply to `credential: managed_identity`",
        "backends.kv.authority_host: expected an https:// Microsoft Entra endpoint",
        "backends.cs.credential: `credential: client_secret` reads the secret from `client_secret_env`",
        "backends.odd.credential: unknown credential `magic`",
        "definitions.jira.secret: Key Vault secret names may contain only letters, digits and dashes; `jira_token` has '_' (did you mean `jira-token`?)",
        "definitions.staged.version_stage: `azure_key_vault` backends have no version stages",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[cfg(not(feature = "azure"))]
#[test]
fn an_azure_backend_without_the_azure_feature_says_so() {
    let lines =
        problems("server:\n  tcp: 127.0.0.1:1\nbackends:\n  kv:\n    type: azure_key_vault\n");
    assert!(
        lines[0].contains(
            "backends.kv.type: this vaultbridge was built without Azure Key Vault support"
        ),
        "{lines:?}"
    );
}

pub(super) const JIRA_BASE: &str = "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: file\n    path: s.yaml\ndefinitions:\n  jira-token:\n    backend: f\n    secret: jira\n    key: token\n  jira-email:\n    backend: f\n    secret: jira\n    key: email\n";

#[test]
fn jira_connections_are_normalised_with_a_warning_per_fix() {
    let config = parse(&format!(
        "{JIRA_BASE}jira:\n  expiry_warning: 14d\n  connections:\n    cloud:\n      url: example.atlassian.net/rest/api/2/\n      email: dev@example.com\n      token: jira-token\n      expires_at: 2027-01-15\n      project: PIPE\n    dc:\n      url: https://jira.corp.example/jira/\n      token: jira-token\n    scoped:\n      url: https://example.atlassian.net\n      deployment: cloud_scoped\n      email_definition: jira-email\n      token: jira-token\n"
    ))
    .expect("valid");
    let cloud = &config.jira.connections["cloud"];
    assert_eq!(cloud.site_url, "https://example.atlassian.net");
    assert_eq!(cloud.deployment, Deployment::Cloud);
    assert_eq!(
        cloud.email,
        Some(EmailSource::Literal("dev@example.com".into()))
    );
    assert_eq!(cloud.expires_at, Some(time::macros::date!(2027 - 01 - 15)));
    assert_eq!(cloud.project.as_deref(), Some("PIPE"));
    let dc = &config.jira.connections["dc"];
    assert_eq!(dc.site_url, "https://jira.corp.example/jira");
    assert_eq!(dc.deployment, Deployment::DataCenter);
    assert_eq!(
        config.jira.connections["scoped"].email,
        Some(EmailSource::Definition("jira-email".into()))
    );
    assert_eq!(config.jira.expiry_warning, Duration::from_secs(14 * 86_400));
    let warnings = config.warnings.join("\n");
    assert!(warnings.contains("`cloud`: added `https://`"), "{warnings}");
    assert!(
        warnings.contains("`cloud`: removed the REST API path"),
        "{warnings}"
    );
    assert!(
        warnings.contains("`dc`: removed the trailing slash"),
        "{warnings}"
    );
}

#[test]
fn jira_connection_mistakes_are_reported_at_load() {
    let text = problems(&format!(
        "{JIRA_BASE}jira:\n  connections:\n    noemail:\n      url: https://a.atlassian.net\n      token: jira-token\n    dcemail:\n      url: https://jira.corp\n      email: x@y.z\n      token: jira-token\n    plain-http:\n      url: http://b.atlassian.net\n      email: x@y.z\n      token: jira-token\n    typo:\n      url: https://c.atlassian.net\n      email: x@y.z\n      token: jira-tokn\n    when:\n      url: https://d.atlassian.net\n      email: x@y.z\n      token: jira-token\n      expires_at: 15/01/2027\n"
    ))
    .join("\n");
    for expected in [
        "jira.connections.noemail: a `cloud` connection needs the account's email address",
        "jira.connections.dcemail.email: a `data_center` connection authenticates with a personal access token alone",
        "jira.connections.plain-http.url: Jira Cloud (*.atlassian.net) only answers over https://",
        "jira.connections.typo.token: `token` names a secret definition, and there is none named `jira-tokn`",
        "jira.connections.when.expires_at: expected a date as YYYY-MM-DD",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn a_display_name_for_email_is_warned_about() {
    let config = parse(&format!(
        "{JIRA_BASE}jira:\n  connections:\n    c:\n      url: https://a.atlassian.net\n      email: Dev Person\n      token: jira-token\n"
    ))
    .expect("valid");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("does not look like an email address")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn a_config_with_a_hundred_thousand_definitions_loads() {
    let mut text =
        String::from("server:\n  tcp: 127.0.0.1:1\nbackends:\n  e:\n    type: env\ndefinitions:\n");
    for i in 0..100_000 {
        text.push_str(&format!("  d{i}:\n    backend: e\n    secret: V{i}\n"));
    }
    let config = parse(&text).expect("valid");
    assert_eq!(config.definitions.len(), 100_000);
}

#[test]
fn a_file_backend_takes_a_change_check_interval() {
    let config = parse(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: file\n    path: s.json\n    change_check_interval: 0s\n",
    )
    .expect("valid");
    let file = settings::<FileConfig>(&config, "f");
    assert_eq!(file.change_check_interval, Duration::ZERO);

    let lines = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: file\n    path: s.json\n    change_check_interval: often\n  e:\n    type: env\n    change_check_interval: 1s\n",
    );
    let text = lines.join("\n");
    assert!(
        text.contains("test.yaml:7:28: backends.f.change_check_interval: expected a duration"),
        "{text}"
    );
    assert!(
        text.contains("`change_check_interval` does not apply to `env` backends"),
        "{text}"
    );
}

#[test]
fn every_problem_of_a_backend_is_reported_at_once_with_its_location() {
    let text = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    regoin: x\n    type: file\n    prefix: APP_\n    format: toml\n    path: s.yaml\n",
    )
    .join("\n");
    for expected in [
        "test.yaml:5:5: backends.f.regoin: `regoin` does not apply to `file` backends; their fields are: type, max_in_flight, breaker_failures, breaker_cooldown, breaker_max_cooldown, path, format, change_check_interval",
        "test.yaml:7:5: backends.f.prefix: `prefix` does not apply to `file` backends",
        "test.yaml:8:13: backends.f.format: unknown format `toml`",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn a_backend_without_a_type_says_which_types_exist() {
    let lines = problems("server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    path: s.yaml\n");
    assert!(
        lines[0].starts_with("test.yaml:5:5: backends.f: a backend needs `type`: one of env, file"),
        "{lines:?}"
    );
    let lines = problems("server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: [file]\n");
    assert!(
        lines[0].starts_with("test.yaml:5:11: backends.f.type: expected a backend type"),
        "{lines:?}"
    );
}

#[test]
fn a_backend_setting_that_is_a_map_where_a_value_belongs_is_explained() {
    let lines = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: file\n    path:\n      a: b\n",
    );
    assert!(
        lines[0].starts_with("test.yaml:7:7: backends.f.path: expected a single value"),
        "{lines:?}"
    );
}

#[test]
fn backend_settings_are_interpolated_and_keep_their_spelling() {
    let config = Config::parse(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  e:\n    type: env\n    prefix: ${PREFIX}_0660_\n  f:\n    type: file\n    path: 0660\n    format: yaml\n",
        "test.yaml",
        Path::new(""),
        &vars(&[("PREFIX", "APP")]),
    )
    .expect("valid");
    assert_eq!(
        settings::<vaultbridge_backend_env::EnvConfig>(&config, "e").prefix,
        "APP_0660_"
    );
    assert_eq!(
        settings::<FileConfig>(&config, "f").path,
        PathBuf::from("0660")
    );
    let lines = problems(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  e:\n    type: env\n    prefix: ${NOPE}\n",
    );
    assert!(
        lines[0].starts_with(
            "test.yaml:6:13: backends.e.prefix: environment variable `NOPE` is not set"
        ),
        "{lines:?}"
    );
}
