//! The first process of the test node image: UDP echo services the tests talk to through the
//! node's `--expose` rules, then the command after `--` (the `pnet-mesh` node), whose exit status
//! becomes the container's.
//!
//! ```text
//! e2e-init --echo 127.0.0.1:9000 -- /usr/local/bin/pnet-mesh up /config/node.conf --expose 7001=127.0.0.1:9000
//! e2e-init --ping 10.77.0.1:7001 hello     # (run with exec) send until the echo answers, print it
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, ExitCode};

fn echo(addr: SocketAddr) {
    let socket = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("e2e-init: cannot bind the echo at {addr}: {e}");
            std::process::exit(3);
        }
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// Sends `payload` to `to` every 200 ms until the same bytes come back (10 s at most).
fn ping(to: &str, payload: &str) -> ExitCode {
    let Ok(to) = to.parse::<SocketAddr>() else {
        eprintln!("e2e-init: --ping {to}: not an address");
        return ExitCode::from(2);
    };
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let Ok(socket) = UdpSocket::bind(bind) else {
        return ExitCode::from(3);
    };
    let _ = socket.set_read_timeout(Some(std::time::Duration::from_millis(200)));
    let mut buf = [0u8; 2048];
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let _ = socket.send_to(payload.as_bytes(), to);
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && &buf[..n] == payload.as_bytes()
        {
            println!("{}", String::from_utf8_lossy(&buf[..n]));
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("e2e-init: no answer from {to}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, to, payload] = args.as_slice()
        && flag == "--ping"
    {
        return ping(to, payload);
    }
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (options, command) = args.split_at(split);
    let mut options = options.iter();
    while let Some(o) = options.next() {
        match (o.as_str(), options.next().map(|v| v.parse::<SocketAddr>())) {
            ("--echo", Some(Ok(addr))) => {
                std::thread::spawn(move || echo(addr));
                eprintln!("e2e-init: echo on {addr}");
            }
            _ => {
                eprintln!("e2e-init: usage: e2e-init [--echo ADDR]... [-- COMMAND...]");
                return ExitCode::from(2);
            }
        }
    }
    let Some((program, rest)) = command.get(1..).and_then(|c| c.split_first()) else {
        // Nothing to supervise: serve the echoes until stopped.
        loop {
            std::thread::park();
        }
    };
    match Command::new(program).args(rest).status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("e2e-init: cannot run {program}: {e}");
            ExitCode::from(127)
        }
    }
}
