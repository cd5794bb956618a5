//! Redfish sessions: log in once per driver, send `X-Auth-Token`, log out on release and on
//! every failure, so a fencing storm never exhausts a BMC's handful of session slots.

use crate::http::{Credential, Http};
use fencegate_driver::{DriverError, ExposeSecret, SecretString};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use zeroize::Zeroizing;

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

/// The login request's fields, borrowed: serialising them copies the password only into
/// the output buffer, never into a `serde_json::Value` or a `String`.
#[derive(Serialize)]
struct LoginFields<'a> {
    #[serde(rename = "UserName")]
    user: &'a str,
    #[serde(rename = "Password")]
    password: &'a str,
}

/// Counts the bytes written to it, to size the login body before writing it.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The login body `{"UserName":…,"Password":…}`, in a buffer wiped when dropped. Its size
/// is measured first and the buffer allocated at exactly that size, so no reallocation
/// leaves an unwiped copy of a partial body behind in freed memory.
pub(crate) fn login_body(
    user: &str,
    password: &SecretString,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let fields = LoginFields {
        user,
        password: password.expose_secret(),
    };
    let mut count = Count(0);
    serde_json::to_writer(&mut count, &fields).map_err(|e| e.to_string())?;
    let mut body = Zeroizing::new(Vec::with_capacity(count.0));
    let start = body.as_ptr();
    serde_json::to_writer(&mut *body, &fields).map_err(|e| e.to_string())?;
    if body.len() != count.0 || body.as_ptr() != start {
        // Cannot happen with serde_json; refuse rather than leave a moved copy unmentioned.
        return Err("the login body changed size while it was written".to_owned());
    }
    Ok(body)
}

/// POST the credentials to the sessions collection.
pub async fn login(
    http: &Http,
    sessions: &str,
    user: &str,
    password: &SecretString,
    deadline: Instant,
) -> Result<Login, DriverError> {
    let body = login_body(user, password).map_err(|why| {
        DriverError::protocol(format!(
            "{}: cannot encode the session login: {why}",
            http.endpoint()
        ))
    })?;
    let reply = http
        .send_secret_json(Method::POST, sessions, body, deadline)
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_body_is_exact_json_in_a_wiped_buffer() {
        for password in [
            "plain",
            "",
            "quote\" backslash\\ slash/",
            "control\u{1}\n\t",
            "ünïcödé ✓",
        ] {
            // The type is the point: the buffer is wiped when it is dropped.
            let body: Zeroizing<Vec<u8>> =
                login_body("admin \"root\"", &SecretString::from(password)).unwrap();
            let parsed: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                parsed,
                serde_json::json!({ "UserName": "admin \"root\"", "Password": password })
            );
            // Sized before it was written: no reallocation left part of it behind.
            assert_eq!(body.len(), body.capacity(), "{password:?}");
        }
    }
}
