//! The `vaultbridge.v1.Jira` gRPC service.

use super::config::Deployment;
use super::{JiraService, Scheme};
use crate::proto::v1::{self as pb, jira_server::Jira};
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct JiraGrpc {
    jira: Arc<JiraService>,
}

impl JiraGrpc {
    pub fn new(jira: Arc<JiraService>) -> Self {
        Self { jira }
    }
}

fn deployment(deployment: Deployment) -> pb::JiraDeployment {
    match deployment {
        Deployment::Cloud => pb::JiraDeployment::Cloud,
        Deployment::CloudScoped => pb::JiraDeployment::CloudScoped,
        Deployment::DataCenter => pb::JiraDeployment::DataCenter,
    }
}

pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

#[tonic::async_trait]
impl Jira for JiraGrpc {
    async fn get_credentials(
        &self,
        request: Request<pb::GetCredentialsRequest>,
    ) -> Result<Response<pb::GetCredentialsResponse>, Status> {
        let credentials = self
            .jira
            .credentials(&request.get_ref().connection, today())
            .await?;
        Ok(Response::new(pb::GetCredentialsResponse {
            connection: credentials.connection.clone(),
            deployment: deployment(credentials.deployment) as i32,
            base_url: credentials.base_url.clone(),
            site_url: credentials.site_url.clone(),
            scheme: match credentials.scheme {
                Scheme::Basic => pb::AuthScheme::Basic,
                Scheme::Bearer => pb::AuthScheme::Bearer,
            } as i32,
            username: credentials.username.clone(),
            token: credentials
                .token
                .expose_str()
                .unwrap_or_default()
                .to_owned(),
            authorization: credentials
                .authorization
                .expose_str()
                .unwrap_or_default()
                .to_owned(),
            project: credentials.project.clone().unwrap_or_default(),
            expires_at: credentials.expires_at.map(|date| date.to_string()),
            days_left: credentials.days_left,
            warnings: credentials.warnings.clone(),
        }))
    }

    async fn list_connections(
        &self,
        _request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let connections = self
            .jira
            .connections()
            .iter()
            .map(|(name, connection)| pb::JiraConnection {
                name: name.clone(),
                deployment: deployment(connection.deployment) as i32,
                site_url: connection.site_url.clone(),
                project: connection.project.clone().unwrap_or_default(),
                expires_at: connection.expires_at.map(|date| date.to_string()),
                token_definition: connection.token_definition.clone(),
                email_definition: match &connection.email {
                    Some(super::config::EmailSource::Definition(definition)) => definition.clone(),
                    _ => String::new(),
                },
            })
            .collect();
        Ok(Response::new(pb::ListConnectionsResponse { connections }))
    }
}
