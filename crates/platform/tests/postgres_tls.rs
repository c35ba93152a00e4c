//! `sslmode=require`: the connection is encrypted, and a server whose certificate is not trusted
//! is refused rather than trusted blindly.
//!
//! Needs a Postgres server with TLS on whose certificate names `localhost`: `TEST_POSTGRES_URL`
//! names its admin database, `TEST_POSTGRES_CERT` the certificate's file (by default
//! `/etc/ssl/certs/ssl-cert-snakeoil.pem`, which Debian's `postgresql` package serves). So the
//! test is ignored by a plain `cargo test`; `scripts/test.sh` starts such a server and runs it.
//! Run by hand (`--ignored`) without one, it fails, saying what is missing.

use platform::sql::{Access, Connection, DbTarget};

/// This file's one test, by name: it runs itself in child processes.
const TEST: &str =
    "require_encrypts_with_a_trusted_certificate_and_refuses_an_unknown_or_misnamed_one";

/// Set in those child processes: the URL to connect to once.
const CHILD_TARGET: &str = "POSTGRES_TLS_TARGET";

/// The `sslmode=require` URL by the name the certificate gives (`localhost`), the certificate,
/// and the URL by another name of the same server (`127.0.0.1`). Panics, saying what is missing,
/// without a server to test against.
fn server() -> (String, String, String) {
    let admin = std::env::var("TEST_POSTGRES_URL").unwrap_or_default();
    assert!(
        !admin.trim().is_empty(),
        "this test needs Postgres with TLS: set TEST_POSTGRES_URL to a server's admin database \
         (postgres://postgres:…@127.0.0.1:5432/postgres), or run scripts/test.sh, which starts \
         a throwaway server and runs it"
    );
    let cert = std::env::var("TEST_POSTGRES_CERT")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".to_owned());
    assert!(
        std::path::Path::new(&cert).exists(),
        "this test needs the server's certificate: {cert} does not exist (set TEST_POSTGRES_CERT \
         to the file of the certificate the server at TEST_POSTGRES_URL presents)"
    );
    let plain = Connection::open(&DbTarget::Postgres(admin.clone()), Access::ReadWrite)
        .unwrap_or_else(|error| panic!("cannot connect to TEST_POSTGRES_URL: {error}"));
    let ssl: String = plain
        .conn()
        .query_row("SHOW ssl", &[], |row| row.get(0))
        .expect("SHOW ssl runs");
    assert_eq!(
        ssl, "on",
        "this test needs TLS on the server at TEST_POSTGRES_URL (ssl = on, with the certificate \
         in {cert}, which must name localhost)"
    );
    // The certificate names localhost: connect by that name.
    let by_ip = admin.replace("@localhost", "@127.0.0.1");
    let separator = if by_ip.contains('?') { '&' } else { '?' };
    let by_ip = format!("{by_ip}{separator}sslmode=require");
    (by_ip.replace("@127.0.0.1", "@localhost"), cert, by_ip)
}

#[test]
#[ignore = "needs Postgres with TLS (TEST_POSTGRES_URL, TEST_POSTGRES_CERT): scripts/test.sh runs it"]
fn require_encrypts_with_a_trusted_certificate_and_refuses_an_unknown_or_misnamed_one() {
    if let Ok(url) = std::env::var(CHILD_TARGET) {
        // In a child process started below: only the client under test.
        connect_once(url);
        return;
    }
    let (url, cert, by_ip) = server();
    // Run in a child process per case: the trusted roots are read once per process.
    let exe = std::env::current_exe().expect("this test binary");
    let run = |url: &str, root: Option<&str>| {
        let mut command = std::process::Command::new(&exe);
        command
            .args(["--exact", TEST, "--include-ignored", "--nocapture"])
            .env(CHILD_TARGET, url)
            // Debian's certificate folder holds the snakeoil certificate too: only the bundle
            // of public CAs counts as the system's roots here.
            .env("SSL_CERT_DIR", "/nonexistent");
        match root {
            Some(root) => command.env("PGSSLROOTCERT", root),
            None => command.env_remove("PGSSLROOTCERT"),
        };
        let output = command.output().expect("the child runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let trusted = run(&url, Some(&cert));
    assert!(trusted.contains("encrypted: true"), "{trusted}");
    let unknown = run(&url, None);
    assert!(
        unknown.contains("refused:") && unknown.contains("UnknownIssuer"),
        "{unknown}"
    );
    let misnamed = run(&by_ip, Some(&cert));
    assert!(
        misnamed.contains("refused:") && misnamed.contains("not valid for name"),
        "{misnamed}"
    );
}

/// Connects to `url` once and prints whether the connection is encrypted or why it was
/// refused, for the test to read from the child process it runs this in: the trusted roots are
/// read once per process, and each case needs other ones.
fn connect_once(url: String) {
    match Connection::open(&DbTarget::Postgres(url), Access::ReadWrite) {
        Ok(conn) => {
            let encrypted: bool = conn
                .conn()
                .query_row(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                    |row| row.get(0),
                )
                .expect("the query runs");
            println!("encrypted: {encrypted}");
        }
        Err(error) => println!("refused: {error}"),
    }
}
