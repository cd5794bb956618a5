//! Starting a program that binds its own loopback port (an emulator, a server written by
//! others), without trusting that the port it was told to use is still free.
//!
//! Such a program can only be given a number, so [`Daemon::start`] does the next best thing
//! to handing over a socket: it waits until the started process itself holds a socket on that
//! port (looked up in `/proc`, so another test's server that happens to sit on the port is
//! never taken for it), and when the program gives up because the port was taken meanwhile
//! ("Address already in use"), it starts it again on a fresh port, a bounded number of times.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a program is started again after losing its port to someone else.
const ATTEMPTS: u32 = 5;
/// How long a program may take to bind its port. Generous: a loaded CI machine starting a
/// Python service is slow, and a healthy start returns as soon as the port is bound.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The transport of the port a program binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A UDP socket (ipmi_sim, snmpd).
    Udp,
    /// A listening TCP socket (sshd, sushy-emulator).
    Tcp,
}

/// A running program in its own temporary directory, serving on a loopback port; killed
/// (and its directory removed) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    name: String,
}

impl Daemon {
    /// Start a program that binds `proto` port on 127.0.0.1, in `dir` (its working directory;
    /// its stdout and stderr go to `<name>.log` there).
    ///
    /// `command` is called with the directory and a port number the kernel just handed out,
    /// writes whatever configuration names the port, and returns the command to run. It may
    /// be called again with another port if the first one was taken before the program bound
    /// it. The test fails, with the program's log, if the program exits for another reason or
    /// does not bind within a generous bound.
    pub fn start(
        name: &str,
        proto: Proto,
        mut dir: tempfile::TempDir,
        mut command: impl FnMut(&Path, u16) -> Command,
    ) -> Daemon {
        let log_path = dir.path().join(format!("{name}.log"));
        for attempt in 1..=ATTEMPTS {
            let port = fresh_port(proto);
            let log = fs::File::create(&log_path)
                .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
            let log_err = log.try_clone().expect("clone the log file handle");
            let child = command(dir.path(), port)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            let mut daemon = Daemon {
                child,
                dir,
                port,
                name: name.to_owned(),
            };
            match daemon.wait_bound(proto) {
                Ok(()) => return daemon,
                Err(log) if attempt < ATTEMPTS && port_was_taken(&log) => {
                    eprintln!("{name}: {proto:?} port {port} was taken meanwhile; trying another");
                    dir = daemon.into_dir();
                }
                Err(log) => panic!("{name} did not serve on 127.0.0.1:{port}:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Stop the program and start `command` in its place, on the same port and directory (a
    /// device's reboot). The port was ours a moment ago but is free while nothing holds it,
    /// so the test fails, with the log, if the new process does not get it back.
    pub fn restart(&mut self, mut command: Command, proto: Proto) {
        self.stop();
        let log = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.log_path())
            .expect("open the log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        self.child = command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot restart {}: {e}", self.name));
        if let Err(log) = self.wait_bound(proto) {
            panic!(
                "{} did not serve again on 127.0.0.1:{}:\n{log}",
                self.name, self.port
            );
        }
    }

    /// The port it serves on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory, where its configuration and state live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its output so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether it has exited (it is not waited for otherwise).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.name))
    }

    /// Wait until the process (or one it started) holds a socket on our port. `Err` carries
    /// the log: the program exited, or did not bind in time.
    fn wait_bound(&mut self, proto: Proto) -> Result<(), String> {
        let until = Instant::now() + READY_WITHIN;
        loop {
            if holds_port(self.child.id(), proto, self.port) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}) before serving:\n{}", self.log()));
            }
            if Instant::now() >= until {
                return Err(format!(
                    "did not bind within {} s:\n{}",
                    READY_WITHIN.as_secs(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the process and take the directory back for another attempt.
    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port the kernel just handed out (and that is released again for the program to bind).
fn fresh_port(proto: Proto) -> u16 {
    let addr = match proto {
        Proto::Udp => crate::ports::udp_socket().local_addr(),
        Proto::Tcp => crate::ports::tcp_listener().local_addr(),
    };
    addr.expect("local address").port()
}

/// Whether a program's log says it could not bind because the port was in use.
fn port_was_taken(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("eaddrinuse")
}

/// Whether `pid` or one of its descendants has a socket of `proto` bound to `port` (listening,
/// for TCP): the socket's inode from `/proc/net/*` among the processes' open descriptors.
pub fn holds_port(pid: u32, proto: Proto, port: u16) -> bool {
    let inodes = socket_inodes(proto, port);
    if inodes.is_empty() {
        return false;
    }
    family(pid).into_iter().any(|p| {
        let Ok(fds) = fs::read_dir(format!("/proc/{p}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]"))
            })
        })
    })
}

/// The inodes of the sockets of `proto` bound to `port` (and, for TCP, listening), IPv4 or
/// IPv6, on any local address.
fn socket_inodes(proto: Proto, port: u16) -> Vec<String> {
    /// `st` of a TCP socket in LISTEN.
    const TCP_LISTEN: &str = "0A";
    let tables: [&str; 2] = match proto {
        Proto::Udp => ["/proc/net/udp", "/proc/net/udp6"],
        Proto::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let want = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in tables {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let listening = proto == Proto::Udp || *state == TCP_LISTEN;
            if local.ends_with(&want) && listening && *inode != "0" {
                inodes.push((*inode).to_owned());
            }
        }
    }
    inodes
}

/// `pid` and all its descendants, from the parent ids in `/proc/*/stat`.
fn family(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The parent id is the second field after the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while let Some(&p) = all.get(i) {
        all.extend(children.get(&p).into_iter().flatten().copied());
        i += 1;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_sockets_are_found_and_a_closed_port_is_not() {
        let me = std::process::id();
        let udp = crate::ports::udp_socket();
        let tcp = crate::ports::tcp_listener();
        assert!(holds_port(me, Proto::Udp, udp.local_addr().unwrap().port()));
        assert!(holds_port(me, Proto::Tcp, tcp.local_addr().unwrap().port()));
        let closed = crate::ports::ClosedTcpPort::new();
        assert!(
            !holds_port(me, Proto::Tcp, closed.port()),
            "bound but not listening is not serving"
        );
    }

    #[test]
    fn another_process_on_the_port_is_not_the_daemon() {
        let udp = crate::ports::udp_socket();
        let port = udp.local_addr().unwrap().port();
        let mut sleeper = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep");
        assert!(!holds_port(sleeper.id(), Proto::Udp, port));
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }

    #[test]
    fn a_taken_port_is_retried_on_another() {
        // A tiny "server" that binds the port it is given, and says what a real one says when
        // it cannot: the first port offered is taken by us, so the first start must fail.
        let squatter = crate::ports::udp_socket();
        let taken = squatter.local_addr().unwrap().port();
        let mut offered = Vec::new();
        let daemon = Daemon::start(
            "udp-echo",
            Proto::Udp,
            tempfile::tempdir().unwrap(),
            |_, port| {
                let port = if offered.is_empty() { taken } else { port };
                offered.push(port);
                let mut c = Command::new(crate::tools::require("python3"));
                c.args(["-c", BIND_AND_WAIT, &port.to_string()]);
                c
            },
        );
        assert_eq!(offered.len(), 2, "{offered:?}");
        assert_eq!(offered[0], taken);
        assert_eq!(daemon.port(), offered[1]);
        assert!(holds_port(daemon.pid(), Proto::Udp, daemon.port()));
    }

    #[test]
    fn a_restart_serves_again_on_the_same_port() {
        let python = crate::tools::require("python3");
        let command = |port: u16| {
            let mut c = Command::new(&python);
            c.args(["-c", BIND_AND_WAIT, &port.to_string()]);
            c
        };
        let mut daemon = Daemon::start(
            "udp-echo",
            Proto::Udp,
            tempfile::tempdir().unwrap(),
            |_, port| command(port),
        );
        let (port, first) = (daemon.port(), daemon.pid());
        daemon.restart(command(port), Proto::Udp);
        assert_ne!(daemon.pid(), first, "a new process");
        assert_eq!(daemon.port(), port);
        assert!(holds_port(daemon.pid(), Proto::Udp, port));
        assert!(!daemon.exited());
    }

    #[test]
    fn a_program_that_fails_otherwise_fails_the_test_with_its_log() {
        let err = std::panic::catch_unwind(|| {
            Daemon::start(
                "failing",
                Proto::Udp,
                tempfile::tempdir().unwrap(),
                |_, _| {
                    let mut c = Command::new("sh");
                    c.args(["-c", "echo configuration is broken >&2; exit 3"]);
                    c
                },
            )
        })
        .expect_err("must fail");
        let msg = err.downcast_ref::<String>().expect("message");
        assert!(msg.contains("configuration is broken"), "{msg}");
        assert!(msg.contains("exited"), "{msg}");
    }

    /// Bind UDP 127.0.0.1:argv[1] and wait; on failure print the OS error and exit 1.
    const BIND_AND_WAIT: &str = "import socket, sys, time\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        try:\n    s.bind(('127.0.0.1', int(sys.argv[1])))\n\
        except OSError as e:\n    print(e, file=sys.stderr); sys.exit(1)\n\
        time.sleep(60)\n";
}
