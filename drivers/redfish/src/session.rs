//! Redfish sessions: log in once per driver, send `X-Auth-Token`, log out on release and on
//! every failure, so a fencing storm never exhausts a BMC's handful of session slots.

use crate::http::{Credential, Http};
use fencegate_driver::{DriverError, SecretString};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// The longest a logout may take. It runs on error paths too, so it must stay short.
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// An open session: the token (a secret) and where to DELETE it.
pub struct Session {
    token: SecretString,
    location: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<redacted>")
            .field("location", &self.location)
            .finish()
    }
}

impl Session {
    /// The credential for requests in this session.
    pub fn credential(&self) -> Credential<'_> {
        Credential::Token(&self.token)
    }
}

/// What a login attempt found.
#[derive(Debug)]
pub enum Login {
    /// A session was opened.
    Opened(Session),
    /// The service has no usable SessionService (404/405/501): use basic authentication.
    NotOffered,
}

/// POST the credentials to the sessions collection.
pub async fn login(
    http: &Http,
    sessions: &str,
    user: &str,
    password: &SecretString,
    deadline: Instant,
) -> Result<Login, DriverError> {
    use fencegate_driver::ExposeSecret;
    let body = json!({ "UserName": user, "Password": password.expose_secret() });
    let reply = http
        .send(
            Method::POST,
            sessions,
            Credential::Anonymous,
            Some(&body),
            deadline,
        )
        .await?;
    drop(body);
    let what = "session login";
    match reply.status {
        StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => {
            let token = reply
                .header("X-Auth-Token")
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_owned()))
                .ok_or_else(|| {
                    DriverError::protocol(format!(
                        "{}: {what}: HTTP {} without an X-Auth-Token header",
                        http.endpoint(),
                        reply.status.as_u16()
                    ))
                })?;
            let location = reply
                .header("Location")
                .map(str::to_owned)
                .or_else(|| {
                    reply
                        .body
                        .get("@odata.id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .map(|l| http.path(&l))
                .transpose()?;
            if location.is_none() {
                tracing::warn!(
                    endpoint = http.endpoint(),
                    "the session has no Location: it cannot be logged out and will expire on \
                     the BMC's own timeout"
                );
            }
            Ok(Login::Opened(Session { token, location }))
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
            Ok(Login::NotOffered)
        }
        _ => Err(http.status_error(what, &reply)),
    }
}

/// DELETE the session, bounded by `deadline` and [`LOGOUT_TIMEOUT`]. A failure is logged,
/// never returned: the call that logs out has its own result to report.
pub async fn logout(http: &Http, session: Session, deadline: Instant) {
    let Some(location) = session.location.as_deref() else {
        return;
    };
    let deadline = deadline.min(Instant::now() + LOGOUT_TIMEOUT);
    match http
        .send(
            Method::DELETE,
            location,
            session.credential(),
            None,
            deadline,
        )
        .await
    {
        Ok(r) if r.status.is_success() => {}
        Ok(r) => tracing::debug!(
            endpoint = http.endpoint(),
            status = r.status.as_u16(),
            "session logout refused"
        ),
        Err(e) => tracing::debug!(endpoint = http.endpoint(), error = %e, "session logout failed"),
    }
}
