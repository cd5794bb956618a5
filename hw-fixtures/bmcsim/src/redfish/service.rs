//! The Redfish resources of one simulated service, as a synchronous function from a request
//! to an answer over the shared power model. No I/O here, so the protocol logic is testable
//! without sockets; `server` carries it over HTTPS.

use super::profile::{AlreadyInState, SessionLimitAnswer, VendorProfile};
use crate::faults::FaultProfile;
use crate::power::{CommandOutcome, CommandRecord, PowerCommand, PowerModel};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Sessions a service allows at once unless the fault profile says otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 16;
/// The id of the simulated system (decoy systems follow as `2`, `3`, …).
pub const SYSTEM_ID: &str = "1";
/// The id of the chassis that holds the simulated system and its power supplies.
pub const CHASSIS_ID: &str = "1";
/// Power supplies a chassis has unless configured otherwise: most rack servers have two.
pub const DEFAULT_POWER_SUPPLIES: usize = 2;
/// At most this many requests are kept per endpoint for tests to inspect.
const MAX_REQUEST_LOG: usize = 1000;
/// A task stays "Running" at least this long.
const MIN_TASK_TIME: Duration = Duration::from_millis(300);
/// At most this many task monitors are kept.
const MAX_TASKS: usize = 64;

/// How a request authenticated, as the simulator judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSeen {
    /// No credentials.
    Anonymous,
    /// Valid basic credentials.
    Basic,
    /// A valid session token.
    Token,
    /// Credentials of either kind that were refused.
    Refused,
}

/// One HTTP request as the simulator saw it (credentials never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path (without query).
    pub path: String,
    /// How it authenticated.
    pub auth: AuthSeen,
    /// The status answered.
    pub status: u16,
}

/// A request as the front end hands it over.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) token: Option<String>,
    /// The `If-Match` header, if any.
    pub(crate) if_match: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// An answer: status, extra headers and a JSON body (none for 204), or bytes sent as they
/// are (a misbehaving BMC's body, labelled JSON whatever it holds).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    pub(crate) raw: Option<String>,
}

impl Response {
    fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Some(body),
            raw: None,
        }
    }

    fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: None,
            raw: None,
        }
    }

    fn header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// A Redfish error body with one extended-info message.
    pub(crate) fn error(status: u16, message_id: &str, message: &str) -> Response {
        Response::json(
            status,
            json!({"error": {
                "code": "Base.1.8.GeneralError",
                "message": "A general error has occurred. See ExtendedInfo for more information.",
                "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message}]
            }}),
        )
    }
}

/// Who the service is: fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) uuid: String,
    pub(crate) serial: String,
    pub(crate) extra_systems: usize,
}

/// The mutable state of one service, shared with the lab under a mutex.
#[derive(Debug)]
pub(crate) struct ServiceState {
    pub(crate) power: PowerModel,
    /// A pending transition (when it ends, towards on?) shown as PoweringOn/PoweringOff.
    pub(crate) transition: Option<(Instant, bool)>,
    pub(crate) faults: FaultProfile,
    pub(crate) profile: VendorProfile,
    /// Reported instead of the model's state when set (`null`, `"Reset"`, …).
    pub(crate) reported_power_state: Option<Value>,
    /// Served verbatim (status 200) instead of the system resource when set: a resource
    /// without `PowerState`, an empty body, HTML.
    pub(crate) raw_system: Option<String>,
    /// Served verbatim (status 200) instead of the resource at these paths (a truncated or
    /// HTML power resource, a chassis without power links), for GET only.
    pub(crate) raw_resources: BTreeMap<String, String>,
    /// The `Status.State` of each power supply, in slot order (`Enabled`, `Absent`,
    /// `StandbyOffline`, …); `None` serves the supply without a `Status`.
    pub(crate) supplies: Vec<Option<String>>,
    /// Whether the system links its chassis (`Links.Chassis`); some BMCs do not.
    pub(crate) chassis_link: bool,
    /// The system's `PowerRestorePolicy`; `None` leaves the property out (older BMCs).
    pub(crate) restore_policy: Option<String>,
    /// Whether the system resource carries an ETag and a PATCH must match it (`If-Match`).
    pub(crate) etags: bool,
    /// Bumped by every change of the system's settings; the ETag is derived from it.
    pub(crate) revision: u64,
    pub(crate) log: Vec<CommandRecord>,
    pub(crate) requests: Vec<RequestRecord>,
    sessions: BTreeMap<u64, String>,
    next_session: u64,
    tasks: BTreeMap<u64, Instant>,
    next_task: u64,
}

impl ServiceState {
    pub(crate) fn new(on: bool, faults: FaultProfile, profile: VendorProfile) -> Self {
        ServiceState {
            power: PowerModel::new(on),
            transition: None,
            faults,
            profile,
            reported_power_state: None,
            raw_system: None,
            raw_resources: BTreeMap::new(),
            supplies: vec![Some("Enabled".to_owned()); DEFAULT_POWER_SUPPLIES],
            chassis_link: true,
            restore_policy: Some("LastState".to_owned()),
            etags: true,
            revision: 1,
            log: Vec::new(),
            requests: Vec::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            tasks: BTreeMap::new(),
            next_task: 1,
        }
    }

    /// The system resource's current ETag.
    pub(crate) fn etag(&self) -> String {
        format!("W/\"rev-{}\"", self.revision)
    }

    /// Sessions open right now.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Forget every session, as a BMC does when they time out or it restarts; their tokens
    /// are refused from then on.
    pub(crate) fn expire_sessions(&mut self) {
        self.sessions.clear();
    }

    /// Force the power (the harness's hand): cancels transitions.
    pub(crate) fn force(&mut self, on: bool) {
        self.power.force(on);
        self.transition = None;
    }

    fn power_state(&mut self, now: Instant) -> Value {
        if let Some(v) = &self.reported_power_state {
            return v.clone();
        }
        let on = self.power.is_on(now);
        if let Some((until, target)) = self.transition {
            if now < until && target != on {
                return json!(if target { "PoweringOn" } else { "PoweringOff" });
            }
            if now >= until {
                self.transition = None;
            }
        }
        json!(if on { "On" } else { "Off" })
    }

    /// Whether the system is settled in `on` (no transition pending).
    fn settled(&mut self, on: bool, now: Instant) -> bool {
        let state = self.power.is_on(now);
        let pending = self.transition.is_some_and(|(until, _)| now < until);
        state == on && !pending
    }
}

fn hex_token() -> String {
    let mut bytes = [0u8; 16];
    // A failed draw leaves zeros; the session id below still makes each token distinct.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn system_path(id: &str) -> String {
    format!("/redfish/v1/Systems/{id}")
}

fn chassis_path() -> String {
    format!("/redfish/v1/Chassis/{CHASSIS_ID}")
}

/// Answer one request. `now` is the time it arrived.
pub(crate) fn handle(
    id: &Identity,
    state: &mut ServiceState,
    req: &Request,
    now: Instant,
) -> Response {
    let auth = authenticate(id, state, req);
    let resp = route(id, state, req, auth, now);
    if state.requests.len() >= MAX_REQUEST_LOG {
        state.requests.remove(0);
    }
    state.requests.push(RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        auth,
        status: resp.status,
    });
    resp
}

fn authenticate(id: &Identity, state: &ServiceState, req: &Request) -> AuthSeen {
    if let Some(token) = &req.token {
        return if state.profile.session_service && state.sessions.values().any(|t| t == token) {
            AuthSeen::Token
        } else {
            AuthSeen::Refused
        };
    }
    let Some(header) = &req.authorization else {
        return AuthSeen::Anonymous;
    };
    let decoded = header
        .strip_prefix("Basic ")
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    match decoded.as_deref().and_then(|s| s.split_once(':')) {
        Some((u, p)) if u == id.user && p == id.password => AuthSeen::Basic,
        _ => AuthSeen::Refused,
    }
}

fn unauthorized() -> Response {
    Response::error(
        401,
        "Base.1.8.NoValidSession",
        "There is no valid session established with the implementation.",
    )
    .header(
        "WWW-Authenticate",
        "Basic realm=\"fencegate-bmcsim\"".to_owned(),
    )
}

fn not_found(path: &str) -> Response {
    Response::error(
        404,
        "Base.1.8.ResourceMissingAtURI",
        &format!("The resource at the URI {path} was not found."),
    )
}

fn route(
    id: &Identity,
    state: &mut ServiceState,
    req: &Request,
    auth: AuthSeen,
    now: Instant,
) -> Response {
    let path = req.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method.as_str();
    let sessions_enabled = state.profile.session_service;
    // Anonymous by specification: the root and the login.
    match (method, segments.as_slice()) {
        ("GET", ["redfish"]) => return Response::json(200, json!({"v1": "/redfish/v1/"})),
        ("GET", ["redfish", "v1"]) => {
            return Response::json(200, service_root(id, sessions_enabled));
        }
        ("POST", ["redfish", "v1", "SessionService", "Sessions"]) if sessions_enabled => {
            return login(id, state, req);
        }
        _ => {}
    }
    if !matches!(auth, AuthSeen::Basic | AuthSeen::Token) {
        return unauthorized();
    }
    if method == "GET"
        && let Some(raw) = state.raw_resources.get(path)
    {
        return Response {
            raw: Some(raw.clone()),
            ..Response::empty(200)
        };
    }
    let power_subsystem = state.profile.power_subsystem;
    match (method, segments.as_slice()) {
        ("GET", ["redfish", "v1", "SessionService"]) if sessions_enabled => Response::json(
            200,
            json!({"@odata.id": "/redfish/v1/SessionService", "Id": "SessionService",
                   "ServiceEnabled": true,
                   "Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}),
        ),
        ("GET", ["redfish", "v1", "SessionService", "Sessions"]) if sessions_enabled => {
            let members: Vec<Value> = state
                .sessions
                .keys()
                .map(|n| json!({"@odata.id": format!("/redfish/v1/SessionService/Sessions/{n}")}))
                .collect();
            Response::json(
                200,
                json!({"@odata.id": "/redfish/v1/SessionService/Sessions",
                       "Members@odata.count": members.len(), "Members": members}),
            )
        }
        ("DELETE", ["redfish", "v1", "SessionService", "Sessions", n]) if sessions_enabled => {
            match n
                .parse::<u64>()
                .ok()
                .and_then(|n| state.sessions.remove(&n))
            {
                Some(_) => Response::empty(204),
                None => not_found(path),
            }
        }
        ("GET", ["redfish", "v1", "Systems"]) => {
            let members: Vec<Value> = (1..=1 + id.extra_systems)
                .map(|n| json!({"@odata.id": system_path(&n.to_string())}))
                .collect();
            Response::json(
                200,
                json!({"@odata.id": "/redfish/v1/Systems", "Name": "Computer System Collection",
                       "Members@odata.count": members.len(), "Members": members}),
            )
        }
        ("GET", ["redfish", "v1", "Systems", sys]) => {
            if *sys == SYSTEM_ID {
                if let Some(raw) = &state.raw_system {
                    return Response {
                        raw: Some(raw.clone()),
                        ..Response::empty(200)
                    };
                }
                let power = state.power_state(now);
                let mut body = system(id, &state.profile, SYSTEM_ID, power);
                if let Some(policy) = &state.restore_policy {
                    body["PowerRestorePolicy"] = json!(policy);
                }
                if state.chassis_link {
                    body["Links"] = json!({"Chassis": [{"@odata.id": chassis_path()}]});
                }
                let resp = Response::json(200, body);
                if state.etags {
                    let etag = state.etag();
                    resp.header("ETag", etag)
                } else {
                    resp
                }
            } else if is_decoy(id, sys) {
                let mut body = system(id, &state.profile, sys, json!("On"));
                body["PowerRestorePolicy"] = json!("AlwaysOn");
                Response::json(200, body)
            } else {
                not_found(path)
            }
        }
        ("GET", ["redfish", "v1", "Systems", sys, "ResetActionInfo"])
            if state.profile.action_info && (*sys == SYSTEM_ID || is_decoy(id, sys)) =>
        {
            Response::json(
                200,
                json!({"@odata.id": format!("{}/ResetActionInfo", system_path(sys)),
                       "Id": "ResetActionInfo", "Name": "Reset Action Info",
                       "Parameters": [{"Name": "ResetType", "Required": true,
                                       "DataType": "String",
                                       "AllowableValues": state.profile.reset_types}]}),
            )
        }
        (
            "POST",
            [
                "redfish",
                "v1",
                "Systems",
                sys,
                "Actions",
                "ComputerSystem.Reset",
            ],
        ) => {
            if *sys == SYSTEM_ID {
                reset(state, req, now)
            } else if is_decoy(id, sys) {
                Response::error(
                    400,
                    "Base.1.8.ActionNotSupported",
                    "This simulated system ignores power actions.",
                )
            } else {
                not_found(path)
            }
        }
        ("PATCH", ["redfish", "v1", "Systems", sys]) => {
            if *sys == SYSTEM_ID {
                patch_system(state, req)
            } else if is_decoy(id, sys) {
                Response::error(
                    400,
                    "Base.1.8.PropertyNotWritable",
                    "The property PowerRestorePolicy is a read only property on this simulated \
                     system.",
                )
            } else {
                not_found(path)
            }
        }
        ("GET", ["redfish", "v1", "Chassis"]) => Response::json(
            200,
            json!({"@odata.id": "/redfish/v1/Chassis", "Name": "Chassis Collection",
                   "Members@odata.count": 1, "Members": [{"@odata.id": chassis_path()}]}),
        ),
        ("GET", ["redfish", "v1", "Chassis", CHASSIS_ID]) => {
            Response::json(200, chassis(power_subsystem))
        }
        ("GET", ["redfish", "v1", "Chassis", CHASSIS_ID, "Power"]) => {
            Response::json(200, legacy_power(&state.supplies))
        }
        ("GET", ["redfish", "v1", "Chassis", CHASSIS_ID, "PowerSubsystem"]) if power_subsystem => {
            let here = format!("{}/PowerSubsystem", chassis_path());
            Response::json(
                200,
                json!({"@odata.id": here, "@odata.type": "#PowerSubsystem.v1_1_0.PowerSubsystem",
                       "Id": "PowerSubsystem", "Name": "Power Subsystem",
                       "PowerSupplies": {"@odata.id": format!("{here}/PowerSupplies")}}),
            )
        }
        (
            "GET",
            [
                "redfish",
                "v1",
                "Chassis",
                CHASSIS_ID,
                "PowerSubsystem",
                "PowerSupplies",
            ],
        ) if power_subsystem => {
            let members: Vec<Value> = (1..=state.supplies.len())
                .map(|n| json!({"@odata.id": supply_path(n)}))
                .collect();
            Response::json(
                200,
                json!({"@odata.id": format!("{}/PowerSubsystem/PowerSupplies", chassis_path()),
                       "Name": "Power Supply Collection",
                       "Members@odata.count": members.len(), "Members": members}),
            )
        }
        (
            "GET",
            [
                "redfish",
                "v1",
                "Chassis",
                CHASSIS_ID,
                "PowerSubsystem",
                "PowerSupplies",
                n,
            ],
        ) if power_subsystem => {
            let slot = n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=state.supplies.len()).contains(n));
            match slot {
                Some(slot) => Response::json(200, supply(slot, &state.supplies[slot - 1])),
                None => not_found(path),
            }
        }
        ("GET", ["redfish", "v1", "TaskService", "TaskMonitors", n]) => {
            let Some(until) = n
                .parse::<u64>()
                .ok()
                .and_then(|n| state.tasks.get(&n).copied())
            else {
                return not_found(path);
            };
            let (status, task_state) = if now < until {
                (202, "Running")
            } else {
                (200, "Completed")
            };
            Response::json(
                status,
                json!({"@odata.id": format!("/redfish/v1/TaskService/Tasks/{n}"), "Id": n,
                       "TaskState": task_state, "TaskStatus": "OK"}),
            )
        }
        (_, ["redfish", "v1", ..]) if !matches!(method, "GET" | "POST" | "PATCH") => {
            Response::error(
                405,
                "Base.1.8.OperationNotAllowed",
                "The operation is not allowed on this resource.",
            )
        }
        _ => not_found(path),
    }
}

fn is_decoy(id: &Identity, sys: &str) -> bool {
    sys.parse::<usize>()
        .is_ok_and(|n| n >= 2 && n <= 1 + id.extra_systems)
}

fn service_root(id: &Identity, sessions: bool) -> Value {
    let mut root = json!({
        "@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService", "Name": "fencegate-bmcsim Redfish", "RedfishVersion": "1.15.0",
        "UUID": id.uuid,
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
    });
    if sessions {
        root["SessionService"] = json!({"@odata.id": "/redfish/v1/SessionService"});
        root["Links"] = json!({"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}});
    }
    root
}

fn system(id: &Identity, profile: &VendorProfile, sys: &str, power: Value) -> Value {
    let path = system_path(sys);
    let mut reset = json!({"target": format!("{path}/Actions/ComputerSystem.Reset")});
    if profile.inline_allowable_values {
        reset["ResetType@Redfish.AllowableValues"] = json!(profile.reset_types);
    }
    if profile.action_info {
        reset["@Redfish.ActionInfo"] = json!(format!("{path}/ResetActionInfo"));
    }
    let (uuid, serial) = if sys == SYSTEM_ID {
        (id.uuid.clone(), id.serial.clone())
    } else {
        (format!("{}-{sys}", id.uuid), format!("{}-{sys}", id.serial))
    };
    json!({
        "@odata.id": path, "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "Id": sys, "Name": format!("fencegate simulated system {sys}"),
        "UUID": uuid, "SerialNumber": serial, "PowerState": power,
        "Actions": {"#ComputerSystem.Reset": reset},
    })
}

/// The chassis holding the system: links to its power resources (the newer
/// `PowerSubsystem` only when the profile offers it) and back to the system.
fn chassis(power_subsystem: bool) -> Value {
    let path = chassis_path();
    let mut body = json!({
        "@odata.id": path, "@odata.type": "#Chassis.v1_23_0.Chassis",
        "Id": CHASSIS_ID, "Name": "fencegate simulated chassis", "ChassisType": "RackMount",
        "Power": {"@odata.id": format!("{path}/Power")},
        "Links": {"ComputerSystems": [{"@odata.id": system_path(SYSTEM_ID)}]},
    });
    if power_subsystem {
        body["PowerSubsystem"] = json!({"@odata.id": format!("{path}/PowerSubsystem")});
    }
    body
}

/// The link of power supply `n` (1-based) in the `PowerSubsystem` collection.
fn supply_path(n: usize) -> String {
    format!("{}/PowerSubsystem/PowerSupplies/{n}", chassis_path())
}

/// A supply's `Status`, when it has one: an absent supply has no health to report.
fn supply_status(state: &Option<String>) -> Option<Value> {
    state.as_ref().map(|s| {
        if s == "Absent" {
            json!({"State": s})
        } else {
            json!({"State": s, "Health": "OK"})
        }
    })
}

/// Power supply `n` (1-based) as a `PowerSupply` resource of the newer schema.
fn supply(n: usize, state: &Option<String>) -> Value {
    let mut body = json!({
        "@odata.id": supply_path(n), "@odata.type": "#PowerSupply.v1_5_0.PowerSupply",
        "Id": n.to_string(), "Name": format!("Power Supply {n}"), "PowerSupplyType": "AC",
    });
    if let Some(status) = supply_status(state) {
        body["Status"] = status;
    }
    body
}

/// The legacy `Power` resource: every supply inline in its `PowerSupplies` array.
fn legacy_power(supplies: &[Option<String>]) -> Value {
    let path = format!("{}/Power", chassis_path());
    let list: Vec<Value> = supplies
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let mut psu = json!({
                "@odata.id": format!("{path}#/PowerSupplies/{i}"), "MemberId": i.to_string(),
                "Name": format!("Power Supply {}", i + 1), "PowerSupplyType": "AC",
            });
            if let Some(status) = supply_status(state) {
                psu["Status"] = status;
            }
            psu
        })
        .collect();
    json!({
        "@odata.id": path, "@odata.type": "#Power.v1_7_1.Power", "Id": "Power", "Name": "Power",
        "PowerSupplies@odata.count": list.len(), "PowerSupplies": list,
    })
}

fn login(id: &Identity, state: &mut ServiceState, req: &Request) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let user = body.get("UserName").and_then(Value::as_str);
    let password = body.get("Password").and_then(Value::as_str);
    if user != Some(id.user.as_str()) || password != Some(id.password.as_str()) {
        return Response::error(
            401,
            "Base.1.8.NoValidSession",
            "The user name or password is not valid.",
        );
    }
    let limit = state.faults.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
    if state.sessions.len() >= limit {
        return match state.profile.session_limit {
            SessionLimitAnswer::Unavailable503 => Response::error(
                503,
                "Base.1.8.SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions \
                 exceeding the limit of the implementation.",
            ),
            SessionLimitAnswer::Rac0218Bad400 => Response::error(
                400,
                "IDRAC.2.8.RAC0218",
                "The maximum number of user sessions is reached.",
            ),
        };
    }
    let n = state.next_session;
    state.next_session += 1;
    let token = format!("{n:x}-{}", hex_token());
    state.sessions.insert(n, token.clone());
    let location = format!("/redfish/v1/SessionService/Sessions/{n}");
    Response::json(
        201,
        json!({"@odata.id": location, "Id": n.to_string(), "UserName": id.user}),
    )
    .header("X-Auth-Token", token)
    .header("Location", location)
}

/// The `PowerRestorePolicy` values of the Redfish ComputerSystem schema.
const RESTORE_POLICIES: [&str; 3] = ["AlwaysOn", "AlwaysOff", "LastState"];

/// PATCH of the system: only `PowerRestorePolicy` is writable. With ETags on, `If-Match`
/// is required (428 without, 412 when stale), as BMCs that guard settings do.
fn patch_system(state: &mut ServiceState, req: &Request) -> Response {
    if state.etags {
        match &req.if_match {
            None => {
                return Response::error(
                    428,
                    "Base.1.8.PreconditionRequired",
                    "A precondition header (If-Match) is required for this operation.",
                );
            }
            Some(tag) if *tag != state.etag() && tag != "*" => {
                return Response::error(
                    412,
                    "Base.1.8.PreconditionFailed",
                    "The ETag supplied did not match the ETag required to change this resource.",
                );
            }
            Some(_) => {}
        }
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let Some(fields) = body.as_object().filter(|f| !f.is_empty()) else {
        return Response::error(
            400,
            "Base.1.8.MalformedJSON",
            "The request body submitted was malformed JSON and could not be parsed.",
        );
    };
    if let Some(other) = fields.keys().find(|k| *k != "PowerRestorePolicy") {
        return Response::error(
            400,
            "Base.1.8.PropertyNotWritable",
            &format!(
                "The property {other} is a read only property and cannot be assigned a value."
            ),
        );
    }
    if state.restore_policy.is_none() {
        return Response::error(
            400,
            "Base.1.8.PropertyUnknown",
            "The property PowerRestorePolicy is not in the list of valid properties for the resource.",
        );
    }
    let value = fields.get("PowerRestorePolicy").and_then(Value::as_str);
    let Some(value) = value.filter(|v| RESTORE_POLICIES.contains(v)) else {
        return Response::error(
            400,
            "Base.1.8.PropertyValueNotInList",
            "The value for the property PowerRestorePolicy is not in the list of acceptable values.",
        );
    };
    state.restore_policy = Some(value.to_owned());
    state.revision += 1;
    Response::empty(204)
}

fn reset(state: &mut ServiceState, req: &Request, now: Instant) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let Some(reset_type) = body.get("ResetType").and_then(Value::as_str) else {
        return Response::error(
            400,
            "Base.1.8.ActionParameterMissing",
            "The action requires the parameter ResetType.",
        );
    };
    if !state.profile.reset_types.iter().any(|t| t == reset_type) {
        return Response::error(
            400,
            "Base.1.8.ActionParameterNotSupported",
            &format!("The parameter ResetType value {reset_type} is not supported."),
        );
    }
    let currently_on = state.power.is_on(now);
    let command = match reset_type {
        "On" | "ForceOn" => Some(PowerCommand::On),
        "ForceOff" => Some(PowerCommand::Off),
        "GracefulShutdown" => Some(PowerCommand::SoftOff),
        "ForceRestart" | "GracefulRestart" => Some(PowerCommand::Reset),
        "PowerCycle" => Some(PowerCommand::Cycle),
        "PushPowerButton" if currently_on => Some(PowerCommand::SoftOff),
        "PushPowerButton" => Some(PowerCommand::On),
        _ => None,
    };
    let Some(command) = command else {
        return Response::empty(204);
    };
    let towards_on = match command {
        PowerCommand::On => Some(true),
        PowerCommand::Off | PowerCommand::SoftOff => Some(false),
        _ => None,
    };
    if let Some(on) = towards_on
        && state.settled(on, now)
    {
        let word = if on { "on" } else { "off" };
        match state.profile.already_in_state {
            AlreadyInState::Accept => {}
            AlreadyInState::Conflict409 => {
                return Response::error(
                    409,
                    "IDRAC.2.8.PSU501",
                    &format!("The server is already powered {word}."),
                );
            }
            AlreadyInState::PowerIs400 => {
                return Response::error(
                    400,
                    "iLO.2.14.InvalidOperationForSystemState",
                    &format!("Power is {word}."),
                );
            }
        }
    }
    let outcome = state.power.command(command, &state.faults, now);
    state.log.push(CommandRecord {
        protocol: "redfish",
        command,
        outcome,
    });
    let mut ends = now;
    if outcome == CommandOutcome::Pending {
        ends = now + state.faults.off_delay();
        let target = !matches!(
            command,
            PowerCommand::Off | PowerCommand::SoftOff | PowerCommand::Cycle
        );
        if !state.faults.off_delay().is_zero() {
            state.transition = Some((ends, target));
        }
    }
    if !state.profile.reset_task {
        return Response::empty(204);
    }
    let n = state.next_task;
    state.next_task += 1;
    if state.tasks.len() >= MAX_TASKS {
        state.tasks.pop_first();
    }
    state.tasks.insert(n, ends.max(now + MIN_TASK_TIME));
    let monitor = format!("/redfish/v1/TaskService/TaskMonitors/{n}");
    Response::json(
        202,
        json!({"@odata.id": format!("/redfish/v1/TaskService/Tasks/{n}"), "Id": n.to_string(),
               "TaskState": "Running", "TaskStatus": "OK", "TaskMonitor": monitor}),
    )
    .header("Location", monitor)
    .header("Retry-After", "1".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redfish::profile::Profile;

    fn ident() -> Identity {
        Identity {
            user: "admin".into(),
            password: "pw".into(),
            uuid: "uuid-0".into(),
            serial: "SIM0".into(),
            extra_systems: 0,
        }
    }

    fn req(method: &str, path: &str, body: Value) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            authorization: Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("admin:pw")
            )),
            token: None,
            if_match: None,
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    const RESET: &str = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";

    #[test]
    fn powering_off_during_the_off_delay_then_off() {
        let id = ident();
        let faults = FaultProfile {
            off_delay_ms: 100,
            ..Default::default()
        };
        let mut s = ServiceState::new(true, faults, Profile::Generic.profile());
        let t0 = Instant::now();
        let r = handle(
            &id,
            &mut s,
            &req("POST", RESET, json!({"ResetType": "ForceOff"})),
            t0,
        );
        assert_eq!(r.status, 204);
        let get = req("GET", "/redfish/v1/Systems/1", Value::Null);
        let ps =
            |s: &mut ServiceState, t| handle(&id, s, &get, t).body.unwrap()["PowerState"].clone();
        assert_eq!(ps(&mut s, t0 + Duration::from_millis(50)), "PoweringOff");
        assert_eq!(ps(&mut s, t0 + Duration::from_millis(100)), "Off");
    }

    #[test]
    fn vendor_answers_to_already_off() {
        let id = ident();
        let now = Instant::now();
        for (profile, status) in [
            (Profile::Generic, 204),
            (Profile::IdracLike, 409),
            (Profile::IloLike, 400),
        ] {
            let mut s = ServiceState::new(false, FaultProfile::default(), profile.profile());
            let r = handle(
                &id,
                &mut s,
                &req("POST", RESET, json!({"ResetType": "ForceOff"})),
                now,
            );
            assert_eq!(r.status, status, "{profile}");
        }
    }

    #[test]
    fn restore_policy_is_served_and_patched_with_its_etag() {
        let id = ident();
        let now = Instant::now();
        let mut s = ServiceState::new(true, FaultProfile::default(), Profile::Generic.profile());
        let get = req("GET", "/redfish/v1/Systems/1", Value::Null);
        let r = handle(&id, &mut s, &get, now);
        assert_eq!(r.body.unwrap()["PowerRestorePolicy"], "LastState");
        let etag = r
            .headers
            .iter()
            .find(|(n, _)| *n == "ETag")
            .map(|(_, v)| v.clone())
            .unwrap();
        let mut patch = req(
            "PATCH",
            "/redfish/v1/Systems/1",
            json!({"PowerRestorePolicy": "AlwaysOff"}),
        );
        assert_eq!(handle(&id, &mut s, &patch, now).status, 428, "no If-Match");
        patch.if_match = Some("W/\"stale\"".into());
        assert_eq!(handle(&id, &mut s, &patch, now).status, 412);
        patch.if_match = Some(etag.clone());
        assert_eq!(handle(&id, &mut s, &patch, now).status, 204);
        assert_eq!(s.restore_policy.as_deref(), Some("AlwaysOff"));
        // The change moved the ETag on: the old one is stale now.
        assert_eq!(handle(&id, &mut s, &patch, now).status, 412);
        patch.if_match = Some(s.etag());
        patch.body = serde_json::to_vec(&json!({"PowerRestorePolicy": "Sometimes"})).unwrap();
        assert_eq!(handle(&id, &mut s, &patch, now).status, 400);
        patch.body = serde_json::to_vec(&json!({"PowerState": "Off"})).unwrap();
        assert_eq!(handle(&id, &mut s, &patch, now).status, 400);
        s.restore_policy = None;
        patch.body = serde_json::to_vec(&json!({"PowerRestorePolicy": "AlwaysOff"})).unwrap();
        let r = handle(&id, &mut s, &patch, now);
        assert_eq!(r.status, 400);
        assert!(r.body.unwrap().to_string().contains("PropertyUnknown"));
        let r = handle(&id, &mut s, &get, now);
        assert!(r.body.unwrap().get("PowerRestorePolicy").is_none());
    }

    #[test]
    fn a_raw_system_body_is_served_verbatim() {
        let id = ident();
        let mut s = ServiceState::new(true, FaultProfile::default(), Profile::Generic.profile());
        s.raw_system = Some("<html>".into());
        let r = handle(
            &id,
            &mut s,
            &req("GET", "/redfish/v1/Systems/1", Value::Null),
            Instant::now(),
        );
        assert_eq!((r.status, r.raw.as_deref()), (200, Some("<html>")));
    }

    #[test]
    fn power_supplies_in_both_forms_with_an_absent_slot() {
        let id = ident();
        let now = Instant::now();
        let mut s = ServiceState::new(true, FaultProfile::default(), Profile::Generic.profile());
        s.supplies = vec![
            Some("Enabled".into()),
            Some("Absent".into()),
            None,
            Some("StandbyOffline".into()),
        ];
        let get = |s: &mut ServiceState, path: &str| {
            let r = handle(&id, s, &req("GET", path, Value::Null), now);
            (r.status, r.body.unwrap_or(Value::Null))
        };
        let (_, sys) = get(&mut s, "/redfish/v1/Systems/1");
        assert_eq!(
            sys["Links"]["Chassis"][0]["@odata.id"],
            "/redfish/v1/Chassis/1"
        );
        let (_, ch) = get(&mut s, "/redfish/v1/Chassis/1");
        assert_eq!(ch["Power"]["@odata.id"], "/redfish/v1/Chassis/1/Power");
        let (_, sub) = get(&mut s, "/redfish/v1/Chassis/1/PowerSubsystem");
        let list = sub["PowerSupplies"]["@odata.id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, coll) = get(&mut s, &list);
        assert_eq!(coll["Members@odata.count"], 4);
        let states: Vec<Value> = (0..4)
            .map(|n| {
                let link = coll["Members"][n]["@odata.id"].as_str().unwrap().to_owned();
                get(&mut s, &link).1["Status"]["State"].clone()
            })
            .collect();
        assert_eq!(
            states,
            [
                json!("Enabled"),
                json!("Absent"),
                Value::Null,
                json!("StandbyOffline")
            ]
        );
        assert_eq!(get(&mut s, &format!("{list}/5")).0, 404);
        assert_eq!(get(&mut s, &format!("{list}/0")).0, 404);
        let (_, power) = get(&mut s, "/redfish/v1/Chassis/1/Power");
        let legacy = power["PowerSupplies"].as_array().unwrap();
        assert_eq!(legacy.len(), 4);
        assert_eq!(legacy[1]["Status"]["State"], "Absent");
        assert!(legacy[2].get("Status").is_none());

        // Older firmware: only the legacy resource, and no link to the newer one.
        s.profile = Profile::LegacyPower.profile();
        let (_, ch) = get(&mut s, "/redfish/v1/Chassis/1");
        assert!(ch.get("PowerSubsystem").is_none());
        assert_eq!(get(&mut s, "/redfish/v1/Chassis/1/PowerSubsystem").0, 404);
        assert_eq!(get(&mut s, &list).0, 404);
        assert_eq!(get(&mut s, "/redfish/v1/Chassis/1/Power").0, 200);

        s.chassis_link = false;
        assert!(
            get(&mut s, "/redfish/v1/Systems/1")
                .1
                .get("Links")
                .is_none()
        );
    }

    #[test]
    fn a_raw_resource_is_served_verbatim_to_authenticated_gets_only() {
        let id = ident();
        let now = Instant::now();
        let mut s = ServiceState::new(true, FaultProfile::default(), Profile::Generic.profile());
        s.raw_resources
            .insert("/redfish/v1/Chassis/1/Power".into(), "{\"Power".into());
        let r = handle(
            &id,
            &mut s,
            &req("GET", "/redfish/v1/Chassis/1/Power/", Value::Null),
            now,
        );
        assert_eq!((r.status, r.raw.as_deref()), (200, Some("{\"Power")));
        let mut anon = req("GET", "/redfish/v1/Chassis/1/Power", Value::Null);
        anon.authorization = None;
        assert_eq!(handle(&id, &mut s, &anon, now).status, 401);
    }

    #[test]
    fn refusals() {
        let id = ident();
        let now = Instant::now();
        let mut s = ServiceState::new(true, FaultProfile::default(), Profile::Generic.profile());
        let mut anon = req("GET", "/redfish/v1/Systems", Value::Null);
        anon.authorization = None;
        assert_eq!(handle(&id, &mut s, &anon, now).status, 401);
        anon.path = "/redfish/v1/".into();
        assert_eq!(handle(&id, &mut s, &anon, now).status, 200);
        let r = handle(
            &id,
            &mut s,
            &req("POST", RESET, json!({"ResetType": "Bogus"})),
            now,
        );
        assert_eq!(r.status, 400);
        assert_eq!(s.requests.len(), 3);
        assert_eq!(s.requests[0].auth, AuthSeen::Anonymous);
        assert!(s.log.is_empty());
    }
}
