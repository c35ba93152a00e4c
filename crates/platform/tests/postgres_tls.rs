//! `sslmode=require`: the connection is encrypted, and a server whose certificate is not trusted
//! is refused rather than trusted blindly.
//!
//! Needs `TEST_POSTGRES_URL` and a server with TLS on whose certificate names `localhost`, as
//! Debian's `postgresql` package sets it up (`/etc/ssl/certs/ssl-cert-snakeoil.pem`, or the file
//! `TEST_POSTGRES_CERT` names). Without them (or with TLS off) it says so and checks nothing.

use platform::sql::{Access, Connection, DbTarget};

/// The `sslmode=require` URL by the name the certificate gives (`localhost`), the certificate,
/// and the URL by another name of the same server (`127.0.0.1`).
fn server() -> Option<(String, String, String)> {
    let admin = std::env::var("TEST_POSTGRES_URL").ok()?;
    let cert = std::env::var("TEST_POSTGRES_CERT")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".to_owned());
    if !std::path::Path::new(&cert).exists() {
        return None;
    }
    let plain = Connection::open(&DbTarget::Postgres(admin.clone()), Access::ReadWrite).ok()?;
    let ssl: String = plain
        .conn()
        .query_row("SHOW ssl", &[], |row| row.get(0))
        .ok()?;
    if ssl != "on" {
        return None;
    }
    // The certificate names localhost: connect by that name.
    let by_ip = admin.replace("@localhost", "@127.0.0.1");
    let separator = if by_ip.contains('?') { '&' } else { '?' };
    let by_ip = format!("{by_ip}{separator}sslmode=require");
    Some((by_ip.replace("@127.0.0.1", "@localhost"), cert, by_ip))
}

#[test]
fn require_encrypts_with_a_trusted_certificate_and_refuses_an_unknown_or_misnamed_one() {
    let Some((url, cert, by_ip)) = server() else {
        eprintln!("skipped: needs TEST_POSTGRES_URL and the server's certificate");
        return;
    };
    // Run in a child process per case: the trusted roots are read once per process.
    let exe = std::env::current_exe().expect("this test binary");
    let run = |url: &str, root: Option<&str>| {
        let mut command = std::process::Command::new(&exe);
        command
            .args(["--exact", "connect_once", "--nocapture"])
            .env("POSTGRES_TLS_TARGET", url)
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

/// Run by the test above in a child process, with `POSTGRES_TLS_TARGET` set; does nothing
/// otherwise.
#[test]
fn connect_once() {
    let Ok(url) = std::env::var("POSTGRES_TLS_TARGET") else {
        return;
    };
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
