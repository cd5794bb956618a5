//! Serve the ACME PowerCtl simulator for a demo:
//! `acme-powerctl-sim [--listen 127.0.0.1:8080] [--settle-ms 2000]`, with the bearer token in
//! the environment variable `ACME_TOKEN` (never on the command line).

use fencegate_acme_plugin::sim::Simulator;
use std::time::Duration;

fn main() {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut settle_ms = 2000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--settle-ms", Some(v)) => match v.parse() {
                Ok(ms) => settle_ms = ms,
                Err(_) => fail(&format!("--settle-ms: not a number: {v}")),
            },
            _ => fail(
                "usage: acme-powerctl-sim [--listen ADDR] [--settle-ms MS] (token in ACME_TOKEN)",
            ),
        }
    }
    let Ok(token) = std::env::var("ACME_TOKEN") else {
        fail("set the bearer token in the environment variable ACME_TOKEN");
    };
    match Simulator::start_on(&listen, &token, Duration::from_millis(settle_ms)) {
        Ok(sim) => {
            println!("acme-powerctl-sim listening on {}", sim.addr());
            loop {
                std::thread::park();
            }
        }
        Err(e) => fail(&format!("cannot listen on {listen}: {e}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("acme-powerctl-sim: {message}");
    std::process::exit(2);
}
