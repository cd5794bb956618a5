//! An example fencegate plugin (a made-up vendor's HTTP power API), built as a cdylib.
//!
//! "ACME PowerCtl" controls one host's power over HTTP:
//!
//! - `GET /api/power` → `200 {"state":"on"}` (`on`, `off`, `powering-on`, `powering-off`)
//! - `POST /api/power {"state":"off"}` (or `on`, `cycle`) → `202`, or `409` when already there
//! - `Authorization: Bearer <token>` on every request (`401` otherwise); `503` when busy
//! - `X-Acme-Serial` on every response names the controller, recorded as an authenticated
//!   identity fact `acme-serial` (see [`AcmePowerCtl`]'s `identity`)
//!
//! Device configuration: the `target` option is the controller's `host:port`, the secret
//! `token` its bearer token. Option `panic_on` (`configure`, `status` or `set_power`) makes the
//! plugin panic there on purpose: it exists so that tests can prove panics are caught.
//!
//! The plugin uses only std for I/O (blocking sockets with timeouts from each deadline). Its
//! simulator, [`sim`], serves the same API for tests and demos.

#![warn(missing_docs)]

pub mod http;
pub mod sim;

use fencegate_plugin_sdk::{
    Action, Channel, CommandReceipt, Device, DriverError, ExposeSecret, IdentityFact, Plugin,
    PowerState, SecretString,
};
use std::ffi::CStr;
use std::time::Instant;

/// The API path of the power resource.
const POWER_PATH: &str = "/api/power";

/// Where a test asks the plugin to panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PanicOn {
    Configure,
    Status,
    SetPower,
}

/// One ACME PowerCtl controller.
pub struct AcmePowerCtl {
    endpoint: String,
    token: SecretString,
    panic_on: Option<PanicOn>,
    serial: Option<String>,
}

impl AcmePowerCtl {
    fn send(
        &mut self,
        method: &str,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<http::HttpResponse, DriverError> {
        let response = http::request(
            &self.endpoint,
            method,
            POWER_PATH,
            self.token.expose_secret(),
            body,
            deadline,
        )?;
        // Only a controller that accepted the token speaks for the box: a 401/403 answer
        // could come from anything listening at the address.
        if !matches!(response.status, 401 | 403)
            && let Some(serial) = response.header("x-acme-serial")
        {
            self.serial = Some(serial.to_owned());
        }
        Ok(response)
    }

    /// Map the statuses every ACME endpoint shares to the contract's error kinds.
    fn failure(&self, status: u16, doing: &str) -> DriverError {
        let e = &self.endpoint;
        match status {
            401 | 403 => DriverError::auth(format!("{e}: token refused ({status}) {doing}")),
            409 => DriverError::state_conflict(format!("{e}: already in that state ({doing})")),
            503 => DriverError::busy(format!("{e}: controller busy (503) {doing}")),
            _ => DriverError::protocol(format!("{e}: unexpected HTTP {status} {doing}")),
        }
    }
}

/// The JSON body of a power reading.
#[derive(serde::Deserialize)]
struct Reading {
    state: String,
}

impl Plugin for AcmePowerCtl {
    const NAME: &'static CStr = c"acme-powerctl";
    const VERSION: &'static CStr = c"0.1.0";

    fn actions() -> Vec<Action> {
        vec![Action::Off, Action::On, Action::Cycle]
    }

    /// The controller is a management processor: it keeps answering while the host is off.
    fn channel() -> Channel {
        Channel::Bmc
    }

    /// The serial comes with every answer to a request the controller accepted the token
    /// for, so it is known after the first successful `status`.
    fn authenticated_identity() -> bool {
        true
    }

    fn configure(device: Device) -> Result<Self, DriverError> {
        let refuse =
            |what: String| DriverError::unsupported(format!("device `{}`: {what}", device.name));
        if let Some(unknown) = device.options.keys().find(|k| k.as_str() != "panic_on") {
            return Err(refuse(format!(
                "unknown option `{unknown}` (known: panic_on)"
            )));
        }
        if let Some(unknown) = device.secrets.keys().find(|k| k.as_str() != "token") {
            return Err(refuse(format!(
                "no secret named `{unknown}` (known: token)"
            )));
        }
        let panic_on = match device.options.get("panic_on").map(String::as_str) {
            None => None,
            Some("configure") => Some(PanicOn::Configure),
            Some("status") => Some(PanicOn::Status),
            Some("set_power") => Some(PanicOn::SetPower),
            Some(other) => return Err(refuse(format!("`panic_on`: unknown place {other:?}"))),
        };
        if panic_on == Some(PanicOn::Configure) {
            panic!("acme-powerctl: asked to panic in configure");
        }
        let address = device
            .address
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                refuse("the `target` option (the controller's host:port) is required".into())
            })?;
        let address = address
            .strip_prefix("http://")
            .unwrap_or(address)
            .trim_end_matches('/');
        let endpoint = if address.contains(':') {
            address.to_owned()
        } else {
            format!("{address}:80")
        };
        let token = device.secrets.get("token").cloned().ok_or_else(|| {
            refuse("needs the secret `token` (give `token_file` or `token_env`)".into())
        })?;
        Ok(AcmePowerCtl {
            endpoint,
            token,
            panic_on,
            serial: None,
        })
    }

    fn status(&mut self, deadline: Instant) -> Result<PowerState, DriverError> {
        if self.panic_on == Some(PanicOn::Status) {
            panic!("acme-powerctl: asked to panic in status");
        }
        let response = self.send("GET", None, deadline)?;
        if response.status != 200 {
            return Err(self.failure(response.status, "reading power"));
        }
        let reading: Reading = serde_json::from_slice(&response.body).map_err(|_| {
            DriverError::protocol(format!(
                "{}: power reading is not {{\"state\":…}}",
                self.endpoint
            ))
        })?;
        Ok(match reading.state.as_str() {
            "on" => PowerState::On,
            "off" => PowerState::Off,
            "powering-on" => PowerState::PoweringOn,
            "powering-off" => PowerState::PoweringOff,
            other => PowerState::Unknown(other.to_owned()),
        })
    }

    fn set_power(
        &mut self,
        action: Action,
        deadline: Instant,
    ) -> Result<CommandReceipt, DriverError> {
        if self.panic_on == Some(PanicOn::SetPower) {
            panic!("acme-powerctl: asked to panic in set_power");
        }
        let state = match action {
            Action::Off => "off",
            Action::On => "on",
            Action::Cycle => "cycle",
            Action::GracefulOff => {
                return Err(DriverError::unsupported(format!(
                    "{}: ACME PowerCtl has no graceful shutdown",
                    self.endpoint
                )));
            }
            // An action added to the contract after this plugin was written: send nothing.
            other => {
                return Err(DriverError::unsupported(format!(
                    "{}: ACME PowerCtl knows no action {other}",
                    self.endpoint
                )));
            }
        };
        let body = format!("{{\"state\":\"{state}\"}}");
        let response = self.send("POST", Some(body.as_bytes()), deadline)?;
        match response.status {
            200 | 202 | 204 => Ok(CommandReceipt::new(format!(
                "{}: HTTP {} for power {state}",
                self.endpoint, response.status
            ))),
            status => Err(self.failure(status, &format!("asking for power {state}"))),
        }
    }

    /// The controller's serial, as an authenticated `acme-serial` (pinnable with
    /// `serial = "…"`). The made-up ACME API counts as authenticating it because the
    /// controller only answers an accepted bearer token with it; a real plugin marks a fact
    /// authenticated only when the protocol binds it to the credentials (a MAC, a verified
    /// TLS session), since plain HTTP answers can be forged on the path.
    fn identity(&self) -> Vec<IdentityFact> {
        self.serial
            .iter()
            .map(|s| IdentityFact::authenticated("acme-serial", s.clone()))
            .collect()
    }
}

fencegate_plugin_sdk::export_plugin!(AcmePowerCtl);
