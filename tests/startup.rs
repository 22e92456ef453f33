//! The real binary, started in its own process: what it prints and what it refuses.
//! Its own test binary, because each case sets the environment of a child process.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Secrets that satisfy the rules (at least 32 bytes each, and different).
const JWT_SECRET: &str = "startup-test-jwt-secret-0123456789abcdef";
const LEASE_SECRET: &str = "startup-test-lease-secret-0123456789abcdef";

fn redis_url() -> String {
    std::env::var("LEASEQ__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `leaseq serve` on port 0 under a fresh key prefix, with `env` on top.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Child {
    let prefix = format!("lqtest:{}", uuid::Uuid::now_v7().simple());
    let mut command = Command::new(env!("CARGO_BIN_EXE_leaseq"));
    command
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .env("LEASEQ__SERVER__BIND", "127.0.0.1:0")
        .env("LEASEQ__REDIS__URL", redis_url())
        .env("LEASEQ__REDIS__KEY_PREFIX", prefix)
        .env("LEASEQ__AUTH__JWT_SECRET", JWT_SECRET)
        .env("LEASEQ__AUTH__LEASE_SECRET", LEASE_SECRET)
        .env("LEASEQ__LOG__FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("the broker starts")
}

/// What a broker printed: stdout and stderr.
struct Output {
    stdout: String,
    stderr: String,
}

/// Reads `child`'s output until it prints `until` on stdout (or exits, or 10 s pass),
/// gives it `linger` more, then kills it.
fn output_of(mut child: Child, until: &str, linger: Duration) -> Output {
    fn reader(mut pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0
                    || send
                        .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        receive
    }
    let stdout = reader(child.stdout.take().expect("stdout"));
    let stderr = reader(child.stderr.take().expect("stderr"));
    let mut output = Output {
        stdout: String::new(),
        stderr: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !output.stdout.contains(until) && Instant::now() < deadline {
        if let Ok(chunk) = stdout.recv_timeout(Duration::from_millis(50)) {
            output.stdout.push_str(&chunk);
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
    }
    std::thread::sleep(linger);
    let _ = child.kill();
    let _ = child.wait();
    output.stdout.extend(stdout.try_iter());
    output.stderr.extend(stderr.iter());
    output
}

#[test]
fn the_redis_password_is_never_logged_when_redis_does_not_answer() {
    for format in ["text", "json"] {
        let child = serve(
            &[],
            &[
                (
                    "LEASEQ__REDIS__URL",
                    "redis://default:s3cretpw@127.0.0.1:1/",
                ),
                ("LEASEQ__LOG__FORMAT", format),
            ],
        );
        let output = output_of(child, "leaseq listening on", Duration::from_millis(1500));
        let all = format!("{}\n{}", output.stdout, output.stderr);
        assert!(
            output.stderr.contains("redis is not answering"),
            "{format}: the warning is logged:\n{all}"
        );
        assert!(
            output.stderr.contains("127.0.0.1:1"),
            "{format}: the host and port are:\n{all}"
        );
        assert!(
            !all.contains("s3cretpw"),
            "{format}: the password leaked:\n{all}"
        );
    }
}
